"""Signed cookies keyed by SESSION_SECRET: the session (`<session_id>.<hmac-sha256 hex>`)
and small signed values such as the sign-in flow's state (services/web/flow.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson

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


def sign_data(secret: str, data: dict[str, Any]) -> str:
    """`data` as a cookie value: base64url JSON with the same HMAC as the session cookie."""
    payload = base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")
    return sign(secret, payload)


def unsign_data(secret: str, cookie: str) -> dict[str, Any]:
    """The dict signed by `sign_data`, or {} when the cookie is absent, forged or malformed."""
    payload = unsign(secret, cookie) if cookie else None
    if payload is None:
        return {}
    try:
        data = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
