"""The one settlement or release of a request's hold.

Every path that ends a request (answer, finished or broken stream, pseudo-stream, client gone,
upstream failure, relay error) goes through one `Charge`; the first call wins and later ones do
nothing, so a hold is settled or released exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from veloera.billing.v1 import billing_pb2

logger = logging.getLogger(__name__)


class Billing(Protocol):
    def settle_later(self, request: billing_pb2.SettleRequest) -> None: ...

    def release_later(self, request_id: str, reason: str) -> None: ...


class Charge:
    """Settles or releases one request's hold, once."""

    __slots__ = ("_billing", "done", "request_id")

    def __init__(self, billing: Billing, request_id: str) -> None:
        self._billing = billing
        self.request_id = request_id
        self.done = False

    def settle(self, build: Callable[[], billing_pb2.SettleRequest]) -> None:
        """Settle with the request `build()` makes; when it cannot be made, release instead
        (a hold left open would block the quota until the reaper charges it in full)."""
        if self.done:
            return
        self.done = True
        try:
            request = build()
        except Exception:
            logger.exception("settlement not built", extra={"request_id": self.request_id})
            self._billing.release_later(self.request_id, "settlement failed")
            return
        self._billing.settle_later(request)

    def release(self, reason: str) -> None:
        if self.done:
            return
        self.done = True
        self._billing.release_later(self.request_id, reason)
