"""Use cases for TOTP two-factor authentication and passkeys (beyond upstream Veloera; new-api has
both). The TOTP secret is kept encrypted with the SecretBox; backup codes only as their lookup
HMAC. A code is accepted within one 30-second step either side of now, and each step once.
Wrong codes count as failed logins (login_guard) under the subject `2fa:<user id>`, so the
second step locks like the first. For passkeys the web service verifies the WebAuthn
ceremonies; accounts keeps the credentials and opens the session."""

from __future__ import annotations

import hmac
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import pyotp
from veloera.accounts.v1 import accounts_pb2 as pb

from services.accounts import convert, login_guard, two_factor_repo, users_repo
from services.accounts.deps import Deps, now
from services.accounts.metrics import LOGINS
from services.accounts.records import PasskeyRecord, TwoFactorRecord, UserRecord
from services.accounts.roles import ENABLED
from services.accounts.types import Conn
from services.accounts.usecases.identity import SESSION_SECONDS
from services.shared.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)

STEP_SECONDS = 30
WINDOW_STEPS = 1  # codes of the previous and the next step are accepted too (clock drift)
BACKUP_CODES = 10
_BACKUP_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_BACKUP_HALF = 5
_TOTP_RE = re.compile(r"^[0-9]{6}$")
MAX_PASSKEYS = 20
MAX_PASSKEY_NAME = 64
T = TypeVar("T")
WRONG_CODE = "the two-factor code is wrong or has already been used"


def _normalize(code: str) -> str:
    """Digits and letters only, lowercased: `123 456` and `ABCDE-FGHIJ` are accepted."""
    return re.sub(r"[^0-9a-z]", "", code.strip().lower())[:32]


def new_backup_codes() -> list[str]:
    """BACKUP_CODES codes of the form `xxxxx-xxxxx` (about 49 bits each)."""
    return [
        "-".join(
            "".join(secrets.choice(_BACKUP_ALPHABET) for _ in range(_BACKUP_HALF)) for _ in range(2)
        )
        for _ in range(BACKUP_CODES)
    ]


def matching_step(secret: str, code: str, at: float) -> int | None:
    """The time step within the window whose TOTP code is `code`, if any."""
    if not _TOTP_RE.match(code):
        return None
    totp, current = pyotp.TOTP(secret), int(at // STEP_SECONDS)
    for step in range(current - WINDOW_STEPS, current + WINDOW_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


# What a current code confirms (each carries user_id, code and client_ip).
CodeRequest = (
    pb.EnableTwoFactorRequest
    | pb.DisableTwoFactorRequest
    | pb.RegenerateBackupCodesRequest
    | pb.CompleteTwoFactorLoginRequest
)


async def get_two_factor_status(
    deps: Deps, request: pb.GetTwoFactorStatusRequest
) -> pb.TwoFactorStatus:
    async with deps.pool.acquire() as conn:
        return await _status(conn, request.user_id)


async def begin_two_factor_setup(
    deps: Deps, request: pb.BeginTwoFactorSetupRequest
) -> pb.TwoFactorSetup:
    secret = pyotp.random_base32()
    async with deps.pool.acquire() as conn, conn.transaction():
        user = await users_repo.get_user(conn, user_id=request.user_id)
        if user is None:
            raise NotFound("user not found")
        saved = await two_factor_repo.save_pending(
            conn, user_id=request.user_id, secret_enc=deps.box.encrypt(secret),
            now=now(),
        )  # fmt: skip
    if not saved:
        raise AlreadyExists("two-factor authentication is already enabled")
    uri = pyotp.TOTP(secret).provisioning_uri(
        name=user.username, issuer_name=request.issuer.strip()[:64] or "Veloera"
    )
    return pb.TwoFactorSetup(secret=secret, otpauth_uri=uri)


async def enable_two_factor(
    deps: Deps, request: pb.EnableTwoFactorRequest
) -> pb.TwoFactorBackupCodes:
    async def enable(conn: Conn, row: TwoFactorRecord) -> list[str]:
        await two_factor_repo.enable(conn, user_id=request.user_id, now=now())
        return await _new_backup_codes(deps, conn, request.user_id)

    codes = await _with_code(deps, request, enable, backup_allowed=False, enabled=False)
    return pb.TwoFactorBackupCodes(codes=codes)


async def disable_two_factor(deps: Deps, request: pb.DisableTwoFactorRequest) -> pb.TwoFactorStatus:
    async def disable(conn: Conn, row: TwoFactorRecord) -> None:
        await two_factor_repo.remove(conn, user_id=request.user_id)

    await _with_code(deps, request, disable, backup_allowed=True)
    return pb.TwoFactorStatus(enabled=False)


async def regenerate_backup_codes(
    deps: Deps, request: pb.RegenerateBackupCodesRequest
) -> pb.TwoFactorBackupCodes:
    async def regenerate(conn: Conn, row: TwoFactorRecord) -> list[str]:
        return await _new_backup_codes(deps, conn, request.user_id)

    codes = await _with_code(deps, request, regenerate, backup_allowed=False)
    return pb.TwoFactorBackupCodes(codes=codes)


async def reset_two_factor(deps: Deps, request: pb.ResetTwoFactorRequest) -> pb.TwoFactorStatus:
    """An administrator's reset for a user who lost the authenticator and the codes."""
    async with deps.pool.acquire() as conn, conn.transaction():
        if await users_repo.get_user(conn, user_id=request.user_id) is None:
            raise NotFound("user not found")
        await two_factor_repo.remove(conn, user_id=request.user_id)
    return pb.TwoFactorStatus(enabled=False)


async def complete_two_factor_login(
    deps: Deps, request: pb.CompleteTwoFactorLoginRequest
) -> pb.LoginResponse:
    async def sign_in(conn: Conn, row: TwoFactorRecord) -> None:
        return None

    await _with_code(deps, request, sign_in, backup_allowed=True)
    async with deps.pool.acquire() as conn:
        user = await users_repo.get_user(conn, user_id=request.user_id)
    if user is None or user.deleted_at is not None:
        raise Unauthenticated("the sign-in has expired, please log in again")
    return await _signed_in(deps, user, request.client_ip, request.user_agent)


async def _new_backup_codes(deps: Deps, conn: Conn, user_id: int) -> list[str]:
    codes = new_backup_codes()
    hashes = [deps.box.lookup_hash(_normalize(code)) for code in codes]
    await two_factor_repo.replace_backup_codes(conn, user_id=user_id, code_hashes=hashes)
    return codes


async def _with_code(
    deps: Deps,
    request: CodeRequest,
    action: Callable[[Conn, TwoFactorRecord], Awaitable[T]],
    *,
    backup_allowed: bool,
    enabled: bool = True,
) -> T:
    """`action` once `request.code` is right for the user's secret (a backup code too
    where allowed); a wrong code is a failed login attempt."""
    code = _normalize(request.code)
    if not code:
        raise InvalidArgument("enter the code from your authenticator app")
    subject, client_ip = f"2fa:{request.user_id}", request.client_ip[:64]
    async with deps.pool.acquire() as conn:  # a wrong state is no failed attempt
        _in_state(await two_factor_repo.get(conn, user_id=request.user_id), enabled)
    async with deps.pool.acquire() as conn, conn.transaction():
        attempt = await login_guard.begin_attempt(
            conn, policy=deps.login_policy, username=subject, client_ip=client_ip,
            now=now(),
        )  # fmt: skip
    async with deps.pool.acquire() as conn, conn.transaction():
        row = _in_state(
            await two_factor_repo.get(conn, user_id=request.user_id, for_update=True), enabled
        )
        if not await _accepts(deps, conn, row, code, backup_allowed=backup_allowed):
            LOGINS.labels("wrong_credentials").inc()
            raise Unauthenticated(WRONG_CODE, code="invalid_two_factor_code")
        await login_guard.succeeded(conn, attempt)
        return await action(conn, row)


async def _accepts(
    deps: Deps, conn: Conn, row: TwoFactorRecord, code: str, *, backup_allowed: bool
) -> bool:
    user_id = row.user_id
    step = matching_step(deps.box.decrypt(row.secret_enc), code, time.time())
    if step is not None:
        return await two_factor_repo.take_step(conn, user_id=user_id, step=step)
    if not backup_allowed or _TOTP_RE.match(code):
        return False
    return await two_factor_repo.use_backup_code(
        conn, user_id=user_id, code_hash=deps.box.lookup_hash(code), now=now()
    )


async def list_passkeys(deps: Deps, request: pb.ListPasskeysRequest) -> pb.ListPasskeysResponse:
    async with deps.pool.acquire() as conn:
        rows = await two_factor_repo.list_passkeys(conn, user_id=request.user_id)
    return pb.ListPasskeysResponse(passkeys=[_passkey(row) for row in rows])


async def add_passkey(deps: Deps, request: pb.AddPasskeyRequest) -> pb.Passkey:
    if not request.credential_id or not request.public_key:
        raise InvalidArgument("the passkey has no credential id or public key")
    name = request.name.strip()[:MAX_PASSKEY_NAME] or "Passkey"
    try:
        async with deps.pool.acquire() as conn, conn.transaction():
            user = await users_repo.get_user(conn, user_id=request.user_id, for_update=True)
            if user is None:
                raise NotFound("user not found")
            existing = await two_factor_repo.list_passkeys(conn, user_id=request.user_id)
            if len(existing) >= MAX_PASSKEYS:
                raise FailedPrecondition(f"at most {MAX_PASSKEYS} passkeys per user")
            row = await two_factor_repo.insert_passkey(
                conn, user_id=request.user_id, credential_id=request.credential_id[:512],
                public_key=request.public_key, sign_count=max(request.sign_count, 0),
                name=name, transports=request.transports[:128], now=now(),
            )  # fmt: skip
    except asyncpg.UniqueViolationError as exc:
        raise AlreadyExists("this passkey is already registered") from exc
    return _passkey(row)


async def delete_passkey(deps: Deps, request: pb.DeletePasskeyRequest) -> pb.DeletePasskeyResponse:
    async with deps.pool.acquire() as conn:
        deleted = await two_factor_repo.delete_passkey(
            conn, user_id=request.user_id, passkey_id=request.id
        )
    if not deleted:
        raise NotFound("passkey not found")
    return pb.DeletePasskeyResponse()


async def get_passkey(deps: Deps, request: pb.GetPasskeyRequest) -> pb.Passkey:
    async with deps.pool.acquire() as conn:
        row = await two_factor_repo.get_passkey(conn, credential_id=request.credential_id)
    if row is None:
        raise NotFound("this passkey is not registered here")
    return _passkey(row)


async def sign_in_with_passkey(
    deps: Deps, request: pb.SignInWithPasskeyRequest
) -> pb.LoginResponse:
    async with deps.pool.acquire() as conn, conn.transaction():
        key = await two_factor_repo.use_passkey(
            conn, credential_id=request.credential_id, sign_count=request.sign_count,
            now=now(),
        )  # fmt: skip
        user = await users_repo.get_user(conn, user_id=key.user_id) if key else None
    if key is None:
        raise Unauthenticated("this passkey is not registered here or was cloned")
    if user is None or user.deleted_at is not None:
        raise Unauthenticated("the user of this passkey no longer exists")
    return await _signed_in(deps, user, request.client_ip, request.user_agent)


def _in_state(row: TwoFactorRecord | None, enabled: bool) -> TwoFactorRecord:
    """The row, when two-factor is on (`enabled`) or set up and waiting for its first code
    (not `enabled`)."""
    if row is not None and row.enabled == enabled:
        return row
    if enabled:
        raise FailedPrecondition("two-factor authentication is not enabled")
    if row is None:
        raise FailedPrecondition("start the two-factor setup first")
    raise AlreadyExists("two-factor authentication is already enabled")


async def _status(conn: Conn, user_id: int) -> pb.TwoFactorStatus:
    row = await two_factor_repo.get(conn, user_id=user_id)
    if row is None or not row.enabled:
        return pb.TwoFactorStatus(enabled=False)
    left = await two_factor_repo.backup_codes_left(conn, user_id=user_id)
    return pb.TwoFactorStatus(enabled=True, backup_codes_left=left)


async def _signed_in(
    deps: Deps, user: UserRecord, client_ip: str, user_agent: str
) -> pb.LoginResponse:
    """A user who proved who they are (second factor, passkey) gets a session unless
    disabled."""
    if user.status != ENABLED:
        LOGINS.labels("disabled").inc()
        raise PermissionDenied("user is disabled", code="user_disabled")
    session_id, expires_at = await open_session(deps, user.id, client_ip, user_agent)
    LOGINS.labels("ok").inc()
    return pb.LoginResponse(user=convert.user(user), session_id=session_id, expire_time=expires_at)


async def open_session(
    deps: Deps, user_id: int, client_ip: str, user_agent: str
) -> tuple[str, int]:
    """A new login session for the user: (the opaque id for the cookie, its expiry)."""
    session_id, stamp = secrets.token_urlsafe(32), now()
    async with deps.pool.acquire() as conn:
        await users_repo.insert_session(
            conn, id_hash=deps.box.lookup_hash(session_id), user_id=user_id, now=stamp,
            expires_at=stamp + SESSION_SECONDS, client_ip=client_ip[:64],
            user_agent=user_agent[:512],
        )  # fmt: skip
    return session_id, stamp + SESSION_SECONDS


def _passkey(row: PasskeyRecord) -> pb.Passkey:
    return pb.Passkey(
        id=row.id, user_id=row.user_id, credential_id=row.credential_id,
        public_key=bytes(row.public_key), sign_count=row.sign_count, name=row.name,
        transports=row.transports, created_time=row.created_at,
        last_used_time=row.last_used_at,
    )  # fmt: skip
