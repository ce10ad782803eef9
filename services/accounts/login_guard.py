"""Failed-login throttling per account and per client IP, kept in PostgreSQL for every replica."""

from __future__ import annotations

import math

from services.accounts.deps import LoginPolicy
from services.accounts.types import Conn
from services.shared.errors import PermissionDenied

RECENT_FAILURES = """
SELECT count(*) AS failures, coalesce(max(failed_at), 0) AS last_failed_at
FROM login_failures WHERE scope = $1 AND subject = $2 AND failed_at > $3
"""
INSERT_FAILURE = "INSERT INTO login_failures (scope, subject, failed_at) VALUES ($1, $2, $3)"
PRUNE = "DELETE FROM login_failures WHERE scope = $1 AND subject = $2 AND failed_at <= $3"
CLEAR = "DELETE FROM login_failures WHERE scope = $1 AND subject = $2"


def _subjects(username: str, client_ip: str) -> list[tuple[str, str]]:
    subjects = [("user", username)]
    if client_ip:
        subjects.append(("ip", client_ip))
    return subjects


async def check_not_locked(
    conn: Conn, *, policy: LoginPolicy, username: str, client_ip: str, now: int
) -> None:
    """PermissionDenied (code login_locked) naming how long is left while a lock holds."""
    for scope, subject in _subjects(username, client_ip):
        limit = policy.max_per_account if scope == "user" else policy.max_per_ip
        if limit <= 0:
            continue
        row = await conn.fetchrow(RECENT_FAILURES, scope, subject, now - policy.lock_seconds)
        assert row is not None
        if row["failures"] >= limit:
            remaining = max(row["last_failed_at"] + policy.lock_seconds - now, 1)
            what = "this account" if scope == "user" else "logins from your IP address"
            raise PermissionDenied(
                f"too many failed logins: {what} is locked for {_duration(remaining)}, "
                "try again later",
                code="login_locked",
            )


async def record_failure(
    conn: Conn, *, policy: LoginPolicy, username: str, client_ip: str, now: int
) -> None:
    for scope, subject in _subjects(username, client_ip):
        await conn.execute(PRUNE, scope, subject, now - policy.lock_seconds)
        await conn.execute(INSERT_FAILURE, scope, subject, now)


async def clear_account(conn: Conn, *, username: str) -> None:
    """A successful login forgives the account's failures (not the IP's)."""
    await conn.execute(CLEAR, "user", username)


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} more seconds"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} more minute" + ("s" if minutes != 1 else "")
