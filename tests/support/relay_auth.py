"""Authenticated-key entries for the relay's unit tests."""

from __future__ import annotations

from veloera.accounts.v1 import accounts_pb2

from services.relay.auth import (
    AuthEntry,
)


def entry(
    *,
    token: dict[str, object] | None = None,
    user: dict[str, object] | None = None,
    usable: tuple[str, ...] = ("default",),
) -> AuthEntry:
    token_fields: dict[str, object] = {"id": 1, "status": 1, "expired_time": -1, **(token or {})}
    user_fields: dict[str, object] = {
        "id": 2,
        "status": 1,
        "role": 1,
        "group": "default",
        **(user or {}),
    }
    reply = accounts_pb2.AuthenticateResponse(
        token=accounts_pb2.Token(**token_fields),  # type: ignore[arg-type]
        user=accounts_pb2.User(**user_fields),  # type: ignore[arg-type]
        usable_groups=list(usable),
    )
    return AuthEntry.from_reply(reply)
