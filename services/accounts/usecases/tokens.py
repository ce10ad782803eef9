"""Use cases for API keys (owned by one user each) and key authentication on the relay path."""

from __future__ import annotations

import asyncio
import logging
import time

from veloera.accounts.v1 import accounts_pb2 as pb

from services.accounts import channels_repo, convert, events, option_rules, tokens_repo, users_repo
from services.accounts.deps import Deps, now, paging
from services.accounts.metrics import AUTHENTICATIONS
from services.accounts.token_rules import ENABLED, check_enable, check_status, fields_from_proto
from services.accounts.types import Conn
from services.shared.crypto import random_key
from services.shared.errors import InvalidArgument, NotFound, Unauthenticated

logger = logging.getLogger(__name__)

KEY_LENGTH = 48
TOUCH_INTERVAL = 60.0
_TOUCH_MEMORY = 100_000


async def create_token(deps: Deps, request: pb.CreateTokenRequest) -> pb.Token:
    stamp = now()
    fields = fields_from_proto(request.token, status=ENABLED, now=stamp, creating=True)
    key = random_key(KEY_LENGTH)
    async with deps.pool.acquire() as conn, conn.transaction():
        await _check_group(conn, user_id=request.user_id, group=fields.group)
        row = await tokens_repo.insert_token(
            conn, user_id=request.user_id, key_enc=deps.box.encrypt(key),
            key_hash=deps.box.lookup_hash(key), now=stamp, fields=fields,
        )  # fmt: skip
    await deps.events.changed(events.TOKEN, ids=[row.id])
    return convert.token(row, key=key)


async def update_token(deps: Deps, request: pb.UpdateTokenRequest) -> pb.Token:
    stamp = now()
    async with deps.pool.acquire() as conn, conn.transaction():
        current = await tokens_repo.get_token(
            conn, token_id=request.token.id, user_id=request.user_id
        )
        if current is None or not request.user_id:
            raise NotFound("token not found")
        if request.status_only:
            status = check_status(request.token.status)
            check_enable(status, current.expired_time, now=stamp)
            row = await tokens_repo.update_status(
                conn, token_id=current.id, user_id=request.user_id, status=status
            )
        else:
            status = request.token.status or current.status
            fields = fields_from_proto(request.token, status=status, now=stamp, creating=False)
            if fields.group != current.group:
                await _check_group(conn, user_id=request.user_id, group=fields.group)
            row = await tokens_repo.update_token(
                conn, token_id=current.id, user_id=request.user_id, fields=fields
            )
    assert row is not None
    await deps.events.changed(events.TOKEN, ids=[row.id])
    return convert.token(row, key=deps.box.decrypt(row.key_enc))


async def get_token(deps: Deps, request: pb.GetTokenRequest) -> pb.Token:
    async with deps.pool.acquire() as conn:
        row = await tokens_repo.get_token(conn, token_id=request.id, user_id=request.user_id)
    if row is None:
        raise NotFound("token not found")
    key = deps.box.decrypt(row.key_enc) if request.user_id else ""
    return convert.token(row, key=key)


async def list_tokens(deps: Deps, request: pb.ListTokensRequest) -> pb.ListTokensResponse:
    limit, offset = paging(request.page, request.page_size)
    async with deps.pool.acquire() as conn:
        rows, total = await tokens_repo.list_tokens(
            conn, user_id=request.user_id, keyword=request.keyword.strip(),
            limit=limit, offset=offset,
        )  # fmt: skip
    box = deps.box
    tokens = [convert.token(row, key=box.decrypt(row.key_enc)) for row in rows]
    return pb.ListTokensResponse(tokens=tokens, total=total)


async def delete_tokens(deps: Deps, request: pb.DeleteTokensRequest) -> pb.DeleteTokenResponse:
    if not request.ids:
        raise InvalidArgument("no token ids given")
    async with deps.pool.acquire() as conn:
        deleted = await tokens_repo.soft_delete(
            conn, user_id=request.user_id, ids=list(request.ids), now=now()
        )
    if deleted:
        await deps.events.changed(events.TOKEN, ids=deleted)
    return pb.DeleteTokenResponse(deleted=len(deleted), ids=deleted)


async def authenticate(deps: Deps, request: pb.AuthenticateRequest) -> pb.AuthenticateResponse:
    key = request.key.strip().removeprefix("sk-")
    if not key:
        AUTHENTICATIONS.labels("invalid").inc()
        raise Unauthenticated("invalid token", code="invalid_token")
    async with deps.pool.acquire() as conn:
        token = await tokens_repo.token_by_hash(conn, key_hash=deps.box.lookup_hash(key))
        user = await users_repo.get_user(conn, user_id=token.user_id) if token else None
        groups_option = await channels_repo.get_option(conn, key="UserUsableGroups")
    if token is None or user is None:
        AUTHENTICATIONS.labels("invalid").inc()
        raise Unauthenticated("invalid token", code="invalid_token")
    AUTHENTICATIONS.labels("ok").inc()
    _touch_later(deps, token.id)
    groups = option_rules.usable_groups(
        groups_option or option_rules.DEFAULT_USABLE_GROUPS, user.group
    )
    return pb.AuthenticateResponse(
        token=convert.token(token), user=convert.user(user), usable_groups=groups
    )


def _touch_later(deps: Deps, token_id: int) -> None:
    """Record the access time at most once a minute per token, off the request path."""
    moment = time.monotonic()
    if moment - deps.access.touched.get(token_id, -TOUCH_INTERVAL) < TOUCH_INTERVAL:
        return
    if len(deps.access.touched) > _TOUCH_MEMORY:
        deps.access.touched.clear()
    deps.access.touched[token_id] = moment
    task = asyncio.create_task(_touch(deps, token_id))
    deps.access.background.add(task)
    task.add_done_callback(deps.access.background.discard)


async def _touch(deps: Deps, token_id: int) -> None:
    try:
        async with deps.pool.acquire() as conn:
            await tokens_repo.touch(conn, token_id=token_id, now=now())
    except Exception as exc:  # best effort: a lost access time is harmless
        logger.warning("cannot record token access time: %s", exc)


async def _check_group(conn: Conn, *, user_id: int, group: str) -> None:
    """A token's group override must be one of its owner's usable groups."""
    user = await users_repo.get_user(conn, user_id=user_id)
    if user is None:
        raise NotFound("user not found")
    if not group:
        return
    value = await channels_repo.get_option(conn, key="UserUsableGroups")
    usable = option_rules.usable_groups(value or option_rules.DEFAULT_USABLE_GROUPS, user.group)
    if group not in usable:
        raise InvalidArgument(
            f"group {group!r} is not usable by this user (usable: {', '.join(usable)})",
            code="group_not_usable",
        )
