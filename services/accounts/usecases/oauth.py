"""Use cases for third-party identities (controller/github.go, controller/oidc.go,
controller/linuxdo.go, controller/idcflare.go, controller/telegram.go, controller/wechat.go,
controller/oauth_common.go): sign in or register with a provider's user id, bind it to the
signed-in user, unbind it. The web service runs the OAuth exchange; accounts only ever sees
the verified subject. An identity belongs to one user (unique per column, migration 0006)."""

from __future__ import annotations

import secrets

import asyncpg
from veloera.accounts.v1 import accounts_pb2 as pb

from services.accounts import (
    channels_repo,
    convert,
    events,
    option_rules,
    two_factor_repo,
    user_rules,
    users_repo,
)
from services.accounts.deps import Deps
from services.accounts.metrics import LOGINS
from services.accounts.records import UserRecord
from services.accounts.roles import COMMON, ENABLED
from services.accounts.types import Conn
from services.accounts.usecases.auth import create_default_token
from services.accounts.usecases.two_factor import open_session
from services.accounts.usecases.users import insert_new_user
from services.shared.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)

MAX_SUBJECT = 128
_LABELS = {
    "github": "GitHub",
    "oidc": "OIDC",
    "linuxdo": "LinuxDO",
    "idcflare": "IDC Flare",
    "telegram": "Telegram",
    "wechat": "WeChat",
}
_USERNAME_ATTEMPTS = 20


def _column(provider: str) -> str:
    column = users_repo.IDENTITY_COLUMNS.get(provider)
    if column is None:
        raise InvalidArgument(f"unknown identity provider {provider!r}")
    return column


def _subject(subject: str) -> str:
    subject = subject.strip()
    if not subject or len(subject) > MAX_SUBJECT:
        raise InvalidArgument("the provider returned no usable user id")
    return subject


def _taken_message(provider: str) -> str:
    return f"this {_LABELS.get(provider, provider)} account is already bound to another user"


async def _free_username(conn: Conn, provider: str) -> str:
    """`<provider>_<n>` with n one past the largest user id, as upstream names them."""
    base = await users_repo.max_user_id(conn) + 1
    for n in range(base, base + _USERNAME_ATTEMPTS):
        if not await users_repo.username_taken(conn, username=f"{provider}_{n}"):
            return f"{provider}_{n}"
    return f"{provider}_{secrets.token_hex(4)}"


async def _profile(conn: Conn, request: pb.SignInWithIdentityRequest) -> tuple[str, str]:
    """(display name, email) for a new user: what the provider says, where usable."""
    label = _LABELS.get(request.provider, request.provider)
    display_name = (request.display_name.strip() or f"{label} User")[: user_rules.MAX_DISPLAY_NAME]
    email = request.email.strip()
    try:
        email = user_rules.check_email(email)
    except InvalidArgument:
        email = ""
    if email and await users_repo.email_taken(conn, email=email):
        email = ""  # the address belongs to someone else: the new user starts without one
    return display_name, email


async def sign_in_with_identity(
    deps: Deps, request: pb.SignInWithIdentityRequest
) -> pb.SignInWithIdentityResponse:
    column, subject = _column(request.provider), _subject(request.subject)
    async with deps.pool.acquire() as conn:
        row = await users_repo.user_by_identity(conn, column=column, subject=subject)
    created, token = False, pb.Token()
    if row is None:
        row, token = await _register(deps, request, column, subject)
        created = True
    elif row.deleted_at is not None:
        raise PermissionDenied("the user bound to this account has been deleted")
    if row.status != ENABLED:
        LOGINS.labels("disabled").inc()
        raise PermissionDenied("user is disabled", code="user_disabled")
    async with deps.pool.acquire() as conn:
        if await two_factor_repo.enabled(conn, user_id=row.id):
            return pb.SignInWithIdentityResponse(
                user=pb.User(id=row.id), created=created, default_token=token,
                two_factor_required=True,
            )  # fmt: skip
    session_id, expires_at = await open_session(deps, row.id, request.client_ip, request.user_agent)
    LOGINS.labels("ok").inc()
    return pb.SignInWithIdentityResponse(
        user=convert.user(row), session_id=session_id, expire_time=expires_at,
        created=created, default_token=token,
    )  # fmt: skip


async def _register(
    deps: Deps, request: pb.SignInWithIdentityRequest, column: str, subject: str
) -> tuple[UserRecord, pb.Token]:
    token = pb.Token()
    try:
        async with deps.pool.acquire() as conn, conn.transaction():
            options = option_rules.merged(await channels_repo.all_options(conn))
            if options["RegisterEnabled"] != "true":
                raise PermissionDenied(
                    "registration is closed by the administrator", code="register_disabled"
                )
            username = await _free_username(conn, request.provider)
            display_name, email = await _profile(conn, request)
            inserted = await insert_new_user(
                conn, username=username, password_hash="", display_name=display_name,
                email=email, role=COMMON, group="default", aff_code=request.aff_code,
            )  # fmt: skip
            row = await users_repo.set_identity(
                conn, user_id=inserted.id, column=column, subject=subject
            )
            assert row is not None  # inserted in this transaction
            if deps.generate_default_token:
                token = await create_default_token(deps, conn, row.id, username)
    except asyncpg.UniqueViolationError as exc:
        # The same identity signing in twice at once: the other attempt registered it.
        raise AlreadyExists("this account is being registered, please retry") from exc
    await deps.events.changed(events.USER, ids=[row.id])
    return row, token


async def bind_identity(deps: Deps, request: pb.BindIdentityRequest) -> pb.User:
    column, subject = _column(request.provider), _subject(request.subject)
    try:
        async with deps.pool.acquire() as conn, conn.transaction():
            holder = await users_repo.user_by_identity(conn, column=column, subject=subject)
            if holder is not None and holder.id != request.user_id:
                raise AlreadyExists(_taken_message(request.provider))
            row = await users_repo.set_identity(
                conn, user_id=request.user_id, column=column, subject=subject
            )
    except asyncpg.UniqueViolationError as exc:
        raise AlreadyExists(_taken_message(request.provider)) from exc
    if row is None:
        raise NotFound("user not found")
    await deps.events.changed(events.USER, ids=[request.user_id])
    return convert.user(row)


async def unbind_identity(deps: Deps, request: pb.UnbindIdentityRequest) -> pb.User:
    column = _column(request.provider)
    async with deps.pool.acquire() as conn, conn.transaction():
        user = await users_repo.get_user(conn, user_id=request.user_id, for_update=True)
        if user is None:
            raise NotFound("user not found")
        if not getattr(user, column):
            raise FailedPrecondition(f"no {_LABELS[request.provider]} account is bound")
        if not _other_way_in(user, column):
            raise FailedPrecondition(
                "set a password or bind an email first: this is your only way to sign in"
            )
        row = await users_repo.set_identity(
            conn, user_id=request.user_id, column=column, subject=""
        )
    assert row is not None
    await deps.events.changed(events.USER, ids=[request.user_id])
    return convert.user(row)


def _other_way_in(user: UserRecord, column: str) -> bool:
    """A password, an email (password reset) or another bound identity remains."""
    identities = ("github_id", "oidc_id", "wechat_id", "telegram_id", "linux_do_id", "idc_flare_id")
    others = any(getattr(user, name) for name in identities if name != column)
    return bool(user.password_hash or user.email or others)
