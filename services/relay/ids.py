"""Request ids: a time string plus 8 random characters (upstream's request-id middleware)."""

from __future__ import annotations

import os
import time

_last_second = 0
_last_stamp = ""


def new_request_id() -> str:
    global _last_second, _last_stamp
    now = int(time.time())
    if now != _last_second:  # strftime once per second, not per request
        _last_second = now
        _last_stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(now))
    return _last_stamp + os.urandom(4).hex()
