"""What every RPC handler needs: the pool, the secret box, the event publisher, the clock."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import asyncpg

from services.accounts import users_repo
from services.accounts.events import EventPublisher
from services.accounts.records import UserRecord
from services.accounts.roles import ENABLED
from services.accounts.types import Conn
from services.shared.crypto import SecretBox
from services.shared.errors import PermissionDenied

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    """Failed logins allowed per (account, client IP) pair and per client IP within the lock
    window; past `slowdown_after` failures from anywhere an account takes one attempt per
    `slowdown_seconds` (login_guard)."""

    max_per_account: int = 5
    max_per_ip: int = 20
    lock_seconds: int = 15 * 60
    slowdown_after: int = 10
    slowdown_seconds: int = 5


@dataclass(slots=True)
class AccessTimes:
    """When each API key was last written as accessed (at most once a minute per key), and the
    background writes still running (awaited at shutdown)."""

    touched: dict[int, float] = field(default_factory=dict)
    background: set[asyncio.Task[None]] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Deps:
    pool: asyncpg.Pool
    box: SecretBox
    events: EventPublisher
    login_policy: LoginPolicy = LoginPolicy()
    generate_default_token: bool = False
    smtp_timeout: float = 10.0
    email_resend_seconds: int = 60
    channel_private_addresses: bool = False
    webhook_private_addresses: bool = False  # notification webhooks may be private addresses
    access: AccessTimes = field(default_factory=AccessTimes)


def now() -> int:
    return int(time.time())


def paging(page: int, page_size: int) -> tuple[int, int]:
    """(limit, offset) from a 1-based page and a size (default 10, at most 100)."""
    size = DEFAULT_PAGE_SIZE if page_size <= 0 else min(page_size, MAX_PAGE_SIZE)
    return size, (max(page, 1) - 1) * size


async def load_actor(conn: Conn, actor_id: int) -> UserRecord:
    """The acting user; a missing, deleted or disabled actor may do nothing."""
    row = await users_repo.get_user(conn, user_id=actor_id) if actor_id > 0 else None
    if row is None:
        raise PermissionDenied("unknown acting user", code="unknown_actor")
    if row.status != ENABLED:
        raise PermissionDenied("user is disabled", code="user_disabled")
    return row
