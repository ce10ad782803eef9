"""Use cases for self-registration, session listing and revocation, and usable groups."""

from __future__ import annotations

from veloera.accounts.v1 import accounts_pb2 as pb

from services.accounts import (
    channels_repo,
    convert,
    events,
    option_rules,
    tokens_repo,
    user_rules,
    users_repo,
)
from services.accounts.deps import Deps, now
from services.accounts.passwords import hash_password
from services.accounts.records import SessionRecord
from services.accounts.registration import check_registration_open
from services.accounts.roles import COMMON
from services.accounts.token_rules import ENABLED, NEVER
from services.accounts.tokens_repo import TokenFields
from services.accounts.types import Conn
from services.accounts.usecases.email import WRONG_CODE, registration_email
from services.accounts.usecases.email import consume as consume_code
from services.accounts.usecases.users import insert_new_user
from services.shared.crypto import random_key
from services.shared.errors import NotFound

DEFAULT_TOKEN_SUFFIX = "的初始令牌"
KEY_LENGTH = 48


def _default_token_fields(username: str) -> TokenFields:
    return TokenFields(
        name=f"{username}{DEFAULT_TOKEN_SUFFIX}", status=ENABLED, expired_time=NEVER,
        unlimited_quota=True, model_limits_enabled=False, model_limits=[], allow_ips=[],
        group="", rate_limit_enabled=False, rate_limit_period=60, rate_limit_count=1000,
        rate_limit_success=10,
    )  # fmt: skip


async def create_default_token(deps: Deps, conn: Conn, user_id: int, username: str) -> pb.Token:
    """The initial unlimited key a self-registered user gets (GENERATE_DEFAULT_TOKEN)."""
    key = random_key(KEY_LENGTH)
    token_row = await tokens_repo.insert_token(
        conn, user_id=user_id, key_enc=deps.box.encrypt(key),
        key_hash=deps.box.lookup_hash(key), now=now(),
        fields=_default_token_fields(username),
    )  # fmt: skip
    return convert.token(token_row, key=key)


async def register(deps: Deps, request: pb.RegisterRequest) -> pb.RegisterResponse:
    username = user_rules.check_username(request.username)
    display_name = user_rules.check_display_name(request.display_name or username)
    password_hash = await hash_password(user_rules.check_password(request.password))
    async with deps.pool.acquire() as conn:
        await check_registration_open(conn)
    email, code_id = await registration_email(deps, request)
    token = pb.Token()
    async with deps.pool.acquire() as conn, conn.transaction():
        await check_registration_open(conn)
        if code_id:
            await consume_code(conn, code_id=code_id, message=WRONG_CODE)
        row = await insert_new_user(
            conn, username=username, password_hash=password_hash, display_name=display_name,
            email=email, role=COMMON, group="default", aff_code=request.aff_code,
        )  # fmt: skip
        if deps.generate_default_token:
            token = await create_default_token(deps, conn, row.id, username)
    await deps.events.changed(events.USER, ids=[row.id])
    return pb.RegisterResponse(user=convert.user(row), default_token=token)


async def list_sessions(deps: Deps, request: pb.ListSessionsRequest) -> pb.ListSessionsResponse:
    current = deps.box.lookup_hash(request.current_session_id) if request.current_session_id else ""
    async with deps.pool.acquire() as conn:
        rows = await users_repo.live_sessions(conn, user_id=request.user_id, now=now())
    sessions = [_session(row, current) for row in rows]
    return pb.ListSessionsResponse(sessions=sessions)


async def revoke_session(deps: Deps, request: pb.RevokeSessionRequest) -> pb.RevokeSessionResponse:
    async with deps.pool.acquire() as conn:
        revoked = await users_repo.revoke_session_by_id(
            conn, session_id=request.id, user_id=request.user_id
        )
    if not revoked:
        raise NotFound("session not found")
    return pb.RevokeSessionResponse()


async def get_usable_groups(deps: Deps, request: pb.GetUsableGroupsRequest) -> pb.UsableGroups:
    async with deps.pool.acquire() as conn:
        value = await channels_repo.get_option(conn, key="UserUsableGroups")
        user = await users_repo.get_user(conn, user_id=request.user_id) if request.user_id else None
    if request.user_id and user is None:
        raise NotFound("user not found")
    groups = option_rules.usable_group_map(
        value or option_rules.DEFAULT_USABLE_GROUPS, user.group if user else ""
    )
    return pb.UsableGroups(groups=groups)


def _session(row: SessionRecord, current_hash: str) -> pb.Session:
    return pb.Session(
        id=row.id,
        created_time=row.created_at,
        expire_time=row.expires_at,
        client_ip=row.client_ip,
        user_agent=row.user_agent,
        current=bool(current_hash) and row.id_hash == current_hash,
    )
