"""Failed-login throttling, kept in PostgreSQL for every replica.

Three counters over the lock window: per (account, client address) pair and per address,
which lock (so a guesser locks out only itself, never the account's owner elsewhere), and per
account from every address, which only slows logins to that account down (one attempt per
`slowdown_seconds`) so a guesser spread over many addresses gets few guesses without locking
the owner out for long.

Counting is atomic: an attempt takes per-account and per-address advisory locks, checks the
counters and records itself as a failure before the password is verified, so parallel wrong
guesses are all counted; a successful login then forgets its own attempt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.accounts.deps import LoginPolicy
from services.accounts.types import Conn
from services.shared.errors import PermissionDenied

LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"
RECENT_FAILURES = """
SELECT scope, count(*) AS failures, coalesce(max(failed_at), 0) AS last_failed_at
FROM login_failures
WHERE failed_at > $4
  AND ((scope = 'user' AND subject = $1) OR (scope = 'pair' AND subject = $2)
       OR (scope = 'ip' AND subject = $3))
GROUP BY scope
"""
INSERT_FAILURE = """
INSERT INTO login_failures (scope, subject, failed_at) VALUES ($1, $2, $3) RETURNING id
"""
PRUNE = "DELETE FROM login_failures WHERE scope = $1 AND subject = $2 AND failed_at <= $3"
FORGET = "DELETE FROM login_failures WHERE id = ANY($1::bigint[])"
CLEAR = "DELETE FROM login_failures WHERE scope = $1 AND subject = $2"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One login attempt, already recorded as a failure (rows `failure_ids`)."""

    username: str
    client_ip: str
    failure_ids: tuple[int, ...]


def _pair(username: str, client_ip: str) -> str:
    return f"{client_ip}\n{username}"


def _subjects(username: str, client_ip: str) -> list[tuple[str, str]]:
    subjects = [("user", username), ("pair", _pair(username, client_ip))]
    if client_ip:
        subjects.append(("ip", client_ip))
    return subjects


async def begin_attempt(
    conn: Conn, *, policy: LoginPolicy, username: str, client_ip: str, now: int
) -> Attempt:
    """Inside a transaction: PermissionDenied (login_locked / login_throttled) when the pair or
    the address is locked or the account is being slowed down; else the attempt, recorded."""
    await conn.execute(LOCK, f"login:user:{username}")
    if client_ip:
        await conn.execute(LOCK, f"login:ip:{client_ip}")
    cutoff = now - policy.lock_seconds
    rows = await conn.fetch(
        RECENT_FAILURES, username, _pair(username, client_ip), client_ip, cutoff
    )
    recent = {row["scope"]: (row["failures"], row["last_failed_at"]) for row in rows}
    _check_lock(policy, recent.get("pair"), "this account from your address", now)
    if client_ip:
        _check_lock(policy, recent.get("ip"), "logins from your IP address", now, per_ip=True)
    _check_slowdown(policy, recent.get("user"), now)
    ids = []
    for scope, subject in _subjects(username, client_ip):
        await conn.execute(PRUNE, scope, subject, cutoff)
        ids.append(int(await conn.fetchval(INSERT_FAILURE, scope, subject, now)))
    return Attempt(username=username, client_ip=client_ip, failure_ids=tuple(ids))


def _check_lock(
    policy: LoginPolicy,
    recent: tuple[int, int] | None,
    what: str,
    now: int,
    *,
    per_ip: bool = False,
) -> None:
    limit = policy.max_per_ip if per_ip else policy.max_per_account
    if limit <= 0 or recent is None or recent[0] < limit:
        return
    remaining = max(recent[1] + policy.lock_seconds - now, 1)
    raise PermissionDenied(
        f"too many failed logins: {what} is locked for {_duration(remaining)}, try again later",
        code="login_locked",
    )


def _check_slowdown(policy: LoginPolicy, recent: tuple[int, int] | None, now: int) -> None:
    if policy.slowdown_after <= 0 or recent is None or recent[0] < policy.slowdown_after:
        return
    wait = recent[1] + policy.slowdown_seconds - now
    if wait > 0:
        raise PermissionDenied(
            f"too many failed logins for this account: try again in {_duration(wait)}",
            code="login_throttled",
        )


async def succeeded(conn: Conn, attempt: Attempt) -> None:
    """The password was right: forget this attempt, and the pair's and the account's earlier
    failures (never the address's)."""
    await conn.execute(FORGET, list(attempt.failure_ids))
    await conn.execute(CLEAR, "pair", _pair(attempt.username, attempt.client_ip))
    await conn.execute(CLEAR, "user", attempt.username)


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} more second" + ("s" if seconds != 1 else "")
    minutes = math.ceil(seconds / 60)
    return f"{minutes} more minute" + ("s" if minutes != 1 else "")
