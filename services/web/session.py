"""Signed session cookie: `<session_id>.<hmac-sha256 hex>` keyed by SESSION_SECRET."""

from __future__ import annotations

import hashlib
import hmac

COOKIE_NAME = "session"


def _signature(secret: str, session_id: str) -> str:
    return hmac.new(secret.encode(), session_id.encode(), hashlib.sha256).hexdigest()


def sign(secret: str, session_id: str) -> str:
    return f"{session_id}.{_signature(secret, session_id)}"


def unsign(secret: str, cookie: str) -> str | None:
    """The session id when the signature matches, else None."""
    session_id, dot, signature = cookie.rpartition(".")
    if not dot or not session_id:
        return None
    if not hmac.compare_digest(signature, _signature(secret, session_id)):
        return None
    return session_id
