"""Who receives a notification and where: the user's notification settings (upstream
`constant/user_setting.go`): email to `notification_email` or the account email (default), or
a webhook URL with an optional signing secret."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.accounts.roles import ADMIN, ENABLED
from services.accounts.types import Conn

EMAIL, WEBHOOK = "email", "webhook"

_COLUMNS = "id, email, setting"
_LIVE = f"deleted_at IS NULL AND status = {ENABLED}"


@dataclass(frozen=True, slots=True)
class Recipient:
    user_id: int
    channel: str  # EMAIL or WEBHOOK
    address: str  # the email address or the webhook URL
    secret: str = ""  # the webhook's signing secret ('' : unsigned)

    def __repr__(self) -> str:  # never print the secret
        return f"Recipient(user_id={self.user_id}, channel={self.channel!r})"


async def for_event(conn: Conn, user_id: int) -> list[Recipient]:
    """The recipients of an event for `user_id`, or of an admin event (user_id 0): root and
    every enabled admin with somewhere to send it (upstream notifies root only)."""
    if user_id > 0:
        rows = await conn.fetch(f"SELECT {_COLUMNS} FROM users WHERE id = $1 AND {_LIVE}", user_id)
    else:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM users WHERE role >= $1 AND {_LIVE} ORDER BY id", ADMIN
        )
    return [target for row in rows if (target := recipient(row)) is not None]


def recipient(row: asyncpg.Record | Mapping[str, Any]) -> Recipient | None:
    """Where a user wants notifications; None when they have no address for their choice."""
    setting = _setting(row["setting"])
    user_id = int(row["id"])
    if setting.get("notify_type") == WEBHOOK:
        url = str(setting.get("webhook_url") or "")
        secret = str(setting.get("webhook_secret") or "")
        return Recipient(user_id, WEBHOOK, url, secret) if url else None
    address = str(setting.get("notification_email") or "") or str(row["email"] or "")
    return Recipient(user_id, EMAIL, address) if address else None


def _setting(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text and text.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
