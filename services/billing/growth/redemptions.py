"""Redemption and gift codes (upstream `model/redemption.go`): batch creation, admin edits and
redeeming, with the use count and the once-per-user rule enforced by locks and constraints in
one transaction."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from services.billing.context import Billing
from services.billing.metering import adjust
from services.billing.store import redemptions as codes
from services.billing.store.redemptions import STATUS_DISABLED, STATUS_ENABLED, STATUS_USED, Code
from services.shared.db import Connection
from services.shared.errors import FailedPrecondition, InvalidArgument, NotFound

MAX_BATCH = 100
MAX_KEY_LENGTH = 32


@dataclass(frozen=True, slots=True)
class NewCodes:
    actor_id: int
    name: str
    quota: int
    count: int
    key: str = ""
    is_gift: bool = False
    max_uses: int = 1
    valid_from: int = 0
    valid_until: int = 0


def validate_fields(
    *, name: str, quota: int, valid_from: int, valid_until: int, is_gift: bool, max_uses: int
) -> None:
    if not 1 <= len(name.strip()) <= 20:
        raise InvalidArgument("name must be 1 to 20 characters", code="invalid_redemption")
    if quota <= 0:
        raise InvalidArgument("quota must be greater than 0", code="invalid_redemption")
    if valid_from < 0 or valid_until < 0:
        raise InvalidArgument("the validity window must not be negative")
    if valid_from and valid_until and valid_from >= valid_until:
        raise InvalidArgument("valid_from must be before valid_until", code="invalid_redemption")
    if is_gift and (max_uses == 0 or max_uses < -1):
        raise InvalidArgument("max_uses must be -1 (unlimited) or at least 1")


async def create(billing: Billing, spec: NewCodes) -> list[str]:
    """New codes (random keys, or the one custom key); their keys."""
    max_uses = spec.max_uses if spec.is_gift else 1
    validate_fields(
        name=spec.name,
        quota=spec.quota,
        valid_from=spec.valid_from,
        valid_until=spec.valid_until,
        is_gift=spec.is_gift,
        max_uses=max_uses,
    )
    custom = spec.key.strip()
    if custom and spec.count > 1:
        raise InvalidArgument("a custom key creates exactly one code (count must be 1)")
    if not 1 <= spec.count <= MAX_BATCH:
        raise InvalidArgument(f"count must be between 1 and {MAX_BATCH}")
    if len(custom) > MAX_KEY_LENGTH:
        raise InvalidArgument(f"a custom key has at most {MAX_KEY_LENGTH} characters")
    keys = [custom] if custom else [secrets.token_hex(16) for _ in range(spec.count)]
    args = [
        (
            spec.actor_id,
            key,
            spec.name.strip(),
            spec.quota,
            spec.valid_from,
            spec.valid_until,
            spec.is_gift,
            max_uses,
        )
        for key in keys
    ]
    async with billing.pool.acquire() as conn, conn.transaction():
        await codes.insert(conn, rows=args)
    return keys


async def redeem(billing: Billing, *, key: str, user_id: int) -> Code:
    """Credit the code's quota to the user once."""
    if not key.strip():
        raise InvalidArgument("the redemption code is required", code="invalid_redemption")
    if user_id <= 0:
        raise InvalidArgument("user_id must be positive")
    async with billing.pool.acquire() as conn, conn.transaction():
        code = await codes.lock_by_key(conn, key=key.strip())
        if code is None:
            raise NotFound("invalid redemption code", code="invalid_redemption")
        _check_usable(code, now=int(time.time()))
        if not await codes.record_use(conn, code_id=code.id, user_id=user_id):
            raise FailedPrecondition(
                "you have already redeemed this gift code", code="gift_already_redeemed"
            )
        await codes.mark_used(conn, code_id=code.id, user_id=user_id)
        await adjust.adjust(conn, change=_credit(code, user_id))
    return code


def _credit(code: Code, user_id: int) -> adjust.Adjustment:
    kind = "礼品码" if code.is_gift else "兑换码"
    return adjust.Adjustment.credit(
        key=f"redeem:{code.id}:{user_id}",
        user_id=user_id,
        quota=code.quota,
        kind="redeem",
        reason=f"redemption {code.id}",
        log_content=f"通过{kind}充值 {code.quota}，兑换码ID {code.id}",
    )


def _check_usable(code: Code, *, now: int) -> None:
    if code.valid_from and now < code.valid_from:
        raise FailedPrecondition("this code is not valid yet", code="redemption_not_started")
    if code.valid_until and now > code.valid_until:
        raise FailedPrecondition("this code has expired", code="redemption_expired")
    if code.status == STATUS_DISABLED:
        raise FailedPrecondition("this code is disabled", code="redemption_disabled")
    if code.status == STATUS_USED or (0 <= code.max_uses <= code.used_count):
        raise FailedPrecondition("this code has already been used", code="redemption_used")


async def get(billing: Billing, *, code_id: int) -> Code:
    async with billing.pool.acquire() as conn:
        return await _get(conn, code_id=code_id)


async def _get(conn: Connection, *, code_id: int) -> Code:
    code = await codes.get(conn, code_id=code_id)
    if code is None:
        raise NotFound(f"redemption {code_id} not found")
    return code


async def list_page(
    billing: Billing, *, page: int, page_size: int, keyword: str, name: str = ""
) -> tuple[list[Code], int]:
    """A page of codes, newest first, optionally by id or name prefix, or of exactly one
    name; (codes, total)."""
    async with billing.pool.acquire() as conn:
        return await codes.list_page(
            conn, page=page, page_size=page_size, keyword=keyword, name=name.strip()
        )


async def update(
    billing: Billing, *, code_id: int, fields: dict[str, Any], status_only: bool
) -> Code:
    """Edit a code (or only its status); the fields are validated like a new code's."""
    async with billing.pool.acquire() as conn, conn.transaction():
        current = await _get(conn, code_id=code_id)
        status = int(fields.get("status") or current.status)
        if status not in (STATUS_ENABLED, STATUS_DISABLED, STATUS_USED):
            raise InvalidArgument("status must be 1 (enabled), 2 (disabled) or 3 (used)")
        if status_only:
            return await codes.update_status(conn, code_id=code_id, status=status)
        name = str(fields["name"])
        quota = int(fields["quota"])
        max_uses = int(fields["max_uses"]) if current.is_gift else 1
        validate_fields(
            name=name,
            quota=quota,
            valid_from=int(fields["valid_from"]),
            valid_until=int(fields["valid_until"]),
            is_gift=current.is_gift,
            max_uses=max_uses,
        )
        if 0 <= max_uses < current.used_count:
            raise InvalidArgument("max_uses cannot be below the number of uses already made")
        return await codes.update(
            conn,
            code_id=code_id,
            name=name.strip(),
            quota=quota,
            valid_from=int(fields["valid_from"]),
            valid_until=int(fields["valid_until"]),
            max_uses=max_uses,
            status=status,
        )


async def delete(
    billing: Billing,
    *,
    code_id: int,
    invalid_only: bool = False,
    name: str = "",
    disabled_only: bool = False,
) -> int:
    """Delete one code, every used, disabled or expired one, every disabled one, or every
    one of a name (upstream `DeleteRedemptionByName`); how many went."""
    async with billing.pool.acquire() as conn:
        if invalid_only:
            return await codes.delete_invalid(conn)
        if disabled_only:
            return await codes.delete_disabled(conn)
        if name.strip():
            return await codes.delete_by_name(conn, name=name.strip())
        if code_id <= 0:
            raise InvalidArgument("say which codes to delete: an id, a name or a kind")
        return await codes.delete(conn, code_id=code_id)


MAX_BATCH = 100


async def disable(billing: Billing, *, ids: list[int]) -> int:
    """Disable the unused codes among `ids` (used ones stay used); how many changed."""
    if not ids:
        raise InvalidArgument("select at least one code")
    if len(ids) > MAX_BATCH:
        raise InvalidArgument(f"at most {MAX_BATCH} codes at a time")
    async with billing.pool.acquire() as conn:
        return await codes.disable_many(conn, ids=sorted(set(ids)))
