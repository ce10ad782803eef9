"""Use cases for email: verification codes, binding, password reset by a mailed link."""

from __future__ import annotations

import hmac
import html
import logging
import secrets

from veloera.accounts.v1 import accounts_pb2 as pb

from services.accounts import (
    convert,
    email_repo,
    email_rules,
    events,
    option_rules,
    options_repo,
    user_rules,
    users_repo,
)
from services.accounts.deps import Deps, now
from services.accounts.mailer import SmtpConfig, send_mail
from services.accounts.passwords import hash_password
from services.accounts.records import EmailCodeRecord
from services.accounts.types import Conn
from services.shared.crypto import random_key
from services.shared.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)

logger = logging.getLogger(__name__)

VERIFY, RESET = "verify", "reset"
CODE_TTL = 10 * 60
RESET_TTL = 15 * 60
MAX_ATTEMPTS = 5
RESET_TOKEN_LENGTH = 32
RANDOM_PASSWORD_LENGTH = 12
PURGE_AFTER = 24 * 3600
WRONG_CODE = "the verification code is wrong or has expired"
WRONG_TOKEN = "the reset link is invalid, already used or expired"


def _code_hash(deps: Deps, purpose: str, email: str, secret: str) -> str:
    return deps.box.lookup_hash(f"email-{purpose}:{email}:{secret}")


async def _options(deps: Deps) -> dict[str, str]:
    async with deps.pool.acquire() as conn:
        return option_rules.merged(await options_repo.load_options(conn, deps.box))


async def check_secret(
    deps: Deps, *, email: str, purpose: str, secret: str, message: str
) -> EmailCodeRecord:
    """The live code row matching `secret`; a wrong guess is counted (committed at once, so
    a code dies after MAX_ATTEMPTS guesses) and answered with InvalidArgument."""
    async with deps.pool.acquire() as conn:
        row = await email_repo.live_code(
            conn, email=email, purpose=purpose, now=now(), max_attempts=MAX_ATTEMPTS
        )
        if row is None:
            raise InvalidArgument(message, code="invalid_verification_code")
        expected = _code_hash(deps, purpose, email, secret)
        if not hmac.compare_digest(row.code_hash, expected):
            await email_repo.count_attempt(conn, code_id=row.id)
            raise InvalidArgument(message, code="invalid_verification_code")
    return row


async def consume(conn: Conn, *, code_id: int, message: str) -> None:
    """Mark a checked code used inside the caller's transaction (single use)."""
    if not await email_repo.consume(conn, code_id=code_id, now=now()):
        raise InvalidArgument(message, code="invalid_verification_code")


async def registration_email(deps: Deps, request: pb.RegisterRequest) -> tuple[str, int]:
    """(email, code id to consume) for a registration; the code is required when
    EmailVerificationEnabled is on, otherwise (email, 0)."""
    options = await _options(deps)
    if options["EmailVerificationEnabled"] != "true":
        return user_rules.check_email(request.email), 0
    if not request.email.strip():
        raise InvalidArgument(
            "email verification is required: send a code to your email first",
            code="email_required",
        )
    email = email_rules.check_allowed(request.email, options)
    if not request.verification_code.strip():
        raise InvalidArgument(
            "the email verification code is required", code="verification_code_required"
        )
    code = email_rules.check_code(request.verification_code)
    row = await check_secret(deps, email=email, purpose=VERIFY, secret=code, message=WRONG_CODE)
    return email, int(row.id)


async def send_email_code(deps: Deps, request: pb.SendEmailCodeRequest) -> pb.SendEmailCodeResponse:
    options = await _options(deps)
    email = email_rules.check_allowed(request.email, options)
    config = SmtpConfig.from_options(options)
    async with deps.pool.acquire() as conn:
        if await email_repo.email_taken(conn, email=email):
            raise AlreadyExists("email already in use", code="email_taken")
    code = f"{secrets.randbelow(10**email_rules.CODE_LENGTH):0{email_rules.CODE_LENGTH}d}"
    code_id, expires_at = await _store(deps, email, VERIFY, code, user_id=0, ttl=CODE_TTL)
    body = (
        f"<p>Hello, you are verifying your email address for {html.escape(config.system_name)}."
        f"</p><p>Your verification code is: <strong>{code}</strong></p>"
        f"<p>The code is valid for {CODE_TTL // 60} minutes. If you did not ask for it,"
        " ignore this email.</p>"
    )
    await _send(deps, config, code_id, email, f"{config.system_name} email verification", body)
    return pb.SendEmailCodeResponse(expire_time=expires_at)


async def bind_email(deps: Deps, request: pb.BindEmailRequest) -> pb.User:
    email = email_rules.normalise(request.email)
    code = email_rules.check_code(request.code)
    checked = await check_secret(deps, email=email, purpose=VERIFY, secret=code, message=WRONG_CODE)
    async with deps.pool.acquire() as conn, conn.transaction():
        user = await users_repo.get_user(conn, user_id=request.user_id, for_update=True)
        if user is None:
            raise NotFound("user not found")
        if await email_repo.email_taken(conn, email=email, except_id=user.id):
            raise AlreadyExists("email already in use", code="email_taken")
        await consume(conn, code_id=checked.id, message=WRONG_CODE)
        row = await users_repo.update_user(conn, user_id=user.id, changes={"email": email})
    assert row is not None
    await deps.events.changed(events.USER, ids=[row.id])
    return convert.user(row)


async def send_password_reset(
    deps: Deps, request: pb.SendPasswordResetRequest
) -> pb.SendPasswordResetResponse:
    """Known and unknown addresses get the same answer: what could fail for any address
    (SMTP or ServerAddress unset) is checked first; what could fail only for a known one
    (the resend limit, the mail itself) is logged and answered as a success."""
    options = await _options(deps)
    email = email_rules.normalise(request.email)
    config = SmtpConfig.from_options(options)
    email_rules.reset_link(options["ServerAddress"], email=email, token="")
    same_answer = pb.SendPasswordResetResponse(expire_time=now() + RESET_TTL)
    async with deps.pool.acquire() as conn:
        user_id = await email_repo.user_by_email(conn, email=email)
    if user_id is None:
        # No mail: the reset form must not tell strangers which addresses have accounts
        # (upstream says "not registered").
        logger.info("password reset asked for an address with no account")
        return same_answer
    token = random_key(RESET_TOKEN_LENGTH)
    link = email_rules.reset_link(options["ServerAddress"], email=email, token=token)
    try:
        code_id, expires_at = await _store(
            deps, email, RESET, token, user_id=user_id, ttl=RESET_TTL
        )
    except FailedPrecondition:
        logger.info("password reset asked again within the resend interval; no mail")
        return same_answer
    body = (
        f"<p>Hello, you asked to reset your {html.escape(config.system_name)} password.</p>"
        f'<p>Open this link to reset it: <a href="{html.escape(link)}">{html.escape(link)}'
        f"</a></p><p>The link works once, within {RESET_TTL // 60} minutes. If you did not"
        " ask for it, ignore this email.</p>"
    )
    try:
        await _send(deps, config, code_id, email, f"{config.system_name} password reset", body)
    except Exception:
        logger.exception("the password reset mail could not be sent")
        return same_answer
    return pb.SendPasswordResetResponse(expire_time=expires_at)


async def reset_password(deps: Deps, request: pb.ResetPasswordRequest) -> pb.ResetPasswordResponse:
    email = email_rules.normalise(request.email)
    token = request.token.strip()
    if not token:
        raise InvalidArgument("the reset token is required", code="token_required")
    password = (
        user_rules.check_password(request.new_password)
        if request.new_password
        else random_key(RANDOM_PASSWORD_LENGTH)
    )
    password_hash = await hash_password(password)
    checked = await check_secret(
        deps, email=email, purpose=RESET, secret=token, message=WRONG_TOKEN
    )
    async with deps.pool.acquire() as conn, conn.transaction():
        await consume(conn, code_id=checked.id, message=WRONG_TOKEN)
        row = await users_repo.update_user(
            conn, user_id=checked.user_id, changes={"password_hash": password_hash}
        )
        if row is None:
            raise NotFound("user not found")
        await users_repo.revoke_credentials(conn, user_id=row.id)
    await deps.events.changed(events.USER, ids=[row.id])
    return pb.ResetPasswordResponse(password=password)


async def _store(
    deps: Deps, email: str, purpose: str, secret: str, *, user_id: int, ttl: int
) -> tuple[int, int]:
    """Store the hashed secret after the per-address resend limit; (row id, expiry)."""
    stamp, wait = now(), deps.email_resend_seconds
    async with deps.pool.acquire() as conn, conn.transaction():
        await email_repo.lock_address(conn, email=email)
        last = await email_repo.last_sent(conn, email=email, purpose=purpose)
        if last and stamp - last < wait:
            raise FailedPrecondition(
                f"an email was sent to this address recently; retry in"
                f" {wait - (stamp - last)} seconds",
                code="email_rate_limited",
            )
        await email_repo.purge_expired(conn, before=stamp - PURGE_AFTER)
        code_id = await email_repo.insert_code(
            conn, email=email, purpose=purpose, code_hash=_code_hash(
                deps, purpose, email, secret
            ), user_id=user_id, now=stamp, ttl=ttl,
        )  # fmt: skip
    return code_id, stamp + ttl


async def _send(
    deps: Deps, config: SmtpConfig, code_id: int, email: str, subject: str, body: str
) -> None:
    """Send, or forget the stored secret when the mail could not be delivered."""
    try:
        await send_mail(config, to=email, subject=subject, html=body, timeout=deps.smtp_timeout)
    except Exception:
        async with deps.pool.acquire() as conn:
            await email_repo.delete_code(conn, code_id=code_id)
        raise
