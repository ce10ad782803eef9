"""Use cases for setup, login, logout, principals and access tokens."""

from __future__ import annotations

import secrets

from veloera.accounts.v1 import accounts_pb2 as pb

from services.accounts import (
    channels_repo,
    convert,
    events,
    login_guard,
    two_factor_repo,
    user_rules,
    users_repo,
)
from services.accounts.deps import Deps, now
from services.accounts.metrics import LOGINS
from services.accounts.passwords import hash_password, needs_rehash, verify_password
from services.accounts.roles import ENABLED, ROOT
from services.shared.crypto import random_key
from services.shared.errors import (
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)

SESSION_SECONDS = 30 * 24 * 3600
ACCESS_TOKEN_LENGTH = 32


async def get_setup_status(deps: Deps, request: pb.GetSetupStatusRequest) -> pb.SetupStatus:
    async with deps.pool.acquire() as conn:
        setup = await users_repo.get_setup(conn)
        root = await users_repo.root_exists(conn)
    return pb.SetupStatus(
        initialized=setup is not None,
        root_exists=root,
        initialized_time=setup.initialized_at if setup else 0,
    )


async def setup(deps: Deps, request: pb.SetupRequest) -> pb.User:
    username = user_rules.check_username(request.username)
    password_hash = await hash_password(user_rules.check_password(request.password))
    options = {
        "SelfUseModeEnabled": _flag(request.self_use_mode),
        "DemoSiteEnabled": _flag(request.demo_site_mode),
    }
    async with deps.pool.acquire() as conn, conn.transaction():
        await users_repo.lock_setup(conn)
        if await users_repo.get_setup(conn) is not None:
            raise FailedPrecondition("system already initialized", code="already_initialized")
        if await users_repo.username_taken(conn, username=username):
            raise AlreadyExists("username already exists")
        row = await users_repo.insert_user(
            conn, username=username, password_hash=password_hash, display_name="Root User",
            email="", role=ROOT, group="default", aff_code=user_rules.new_aff_code(),
            inviter_id=0, now=now(),
        )  # fmt: skip
        await users_repo.insert_setup(conn, root_user_id=row.id, now=now())
        for key, value in options.items():
            await channels_repo.upsert_option(conn, key=key, value=value)
        version = await channels_repo.bump_version(conn, options=True)
    await deps.events.changed(events.USER, ids=[row.id], routing_version=version)
    await deps.events.changed(events.OPTION, routing_version=version, option_keys=list(options))
    return convert.user(row)


async def login(deps: Deps, request: pb.LoginRequest) -> pb.LoginResponse:
    policy, stamp = deps.login_policy, now()
    client_ip = request.client_ip[:64]
    async with deps.pool.acquire() as conn, conn.transaction():
        if await channels_repo.get_option(conn, key="PasswordLoginEnabled") == "false":
            raise PermissionDenied(
                "password login has been disabled by the administrator",
                code="password_login_disabled",
            )
        attempt = await login_guard.begin_attempt(
            conn, policy=policy, username=request.username, client_ip=client_ip, now=stamp
        )
        row = await users_repo.get_user_by_name(conn, username=request.username)
    stored_hash = row.password_hash if row is not None else ""
    if row is None or not await verify_password(stored_hash, request.password):
        LOGINS.labels("wrong_credentials").inc()
        raise Unauthenticated("username or password is wrong", code="invalid_credentials")
    session_id = secrets.token_urlsafe(32)
    expires_at = stamp + SESSION_SECONDS
    # An imported bcrypt hash (or outdated argon2 parameters) becomes argon2 now that the
    # password is known.
    new_hash = await hash_password(request.password) if needs_rehash(stored_hash) else ""
    async with deps.pool.acquire() as conn, conn.transaction():
        await login_guard.succeeded(conn, attempt)
        second_factor = await two_factor_repo.enabled(conn, user_id=row.id)
        if row.status == ENABLED and new_hash:
            await users_repo.update_user(conn, user_id=row.id, changes={"password_hash": new_hash})
        if row.status == ENABLED and not second_factor:
            await users_repo.insert_session(
                conn, id_hash=deps.box.lookup_hash(session_id), user_id=row.id,
                now=stamp, expires_at=expires_at, client_ip=client_ip,
                user_agent=request.user_agent[:512],
            )  # fmt: skip
    if row.status != ENABLED:
        LOGINS.labels("disabled").inc()
        raise PermissionDenied("user is disabled", code="user_disabled")
    if second_factor:
        # The session comes from CompleteTwoFactorLogin once the code is right.
        return pb.LoginResponse(user=pb.User(id=row.id), two_factor_required=True)
    LOGINS.labels("ok").inc()
    return pb.LoginResponse(user=convert.user(row), session_id=session_id, expire_time=expires_at)


async def logout(deps: Deps, request: pb.LogoutRequest) -> pb.LogoutResponse:
    if request.session_id:
        async with deps.pool.acquire() as conn:
            id_hash = deps.box.lookup_hash(request.session_id)
            await users_repo.revoke_session(conn, id_hash=id_hash)
    return pb.LogoutResponse()


async def resolve_principal(deps: Deps, request: pb.ResolvePrincipalRequest) -> pb.User:
    credential = request.WhichOneof("credential")
    secret = request.session_id if credential == "session_id" else request.access_token
    if not secret:
        raise Unauthenticated("not logged in", code="not_logged_in")
    id_hash = deps.box.lookup_hash(secret)
    async with deps.pool.acquire() as conn:
        if credential == "session_id":
            row = await users_repo.session_user(conn, id_hash=id_hash, now=now())
        else:
            row = await users_repo.user_by_access_token(conn, token_hash=id_hash)
    if row is None:
        raise Unauthenticated("not logged in or the session has expired", code="not_logged_in")
    if request.claimed_user_id != row.id:
        raise PermissionDenied(
            "Veloera-User header does not match the logged-in user", code="user_mismatch"
        )
    if row.status != ENABLED:
        raise PermissionDenied("user is disabled", code="user_disabled")
    return convert.user(row)


async def issue_access_token(
    deps: Deps, request: pb.IssueAccessTokenRequest
) -> pb.IssueAccessTokenResponse:
    access_token = random_key(ACCESS_TOKEN_LENGTH)
    token_hash = deps.box.lookup_hash(access_token)
    async with deps.pool.acquire() as conn:
        if not await users_repo.set_access_token(
            conn, user_id=request.user_id, token_hash=token_hash
        ):
            raise NotFound("user not found")
    await deps.events.changed(events.USER, ids=[request.user_id])
    return pb.IssueAccessTokenResponse(access_token=access_token)


def _flag(value: bool) -> str:
    return "true" if value else "false"
