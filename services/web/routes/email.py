"""Email endpoints: verification codes, binding an address, password reset by a mailed link."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route
from veloera.accounts.v1 import accounts_pb2

from services.web.api import ROLE_COMMON, ApiError, Call, endpoint
from services.web.deps import Deps

# Sending mail waits for the SMTP server (bounded by ACCOUNTS_SMTP_TIMEOUT in accounts).
MAIL_EXTRA_SECONDS = 15.0


def _mail_timeout(deps: Deps) -> float:
    return deps.timeout + MAIL_EXTRA_SECONDS


def _query(call: Call, name: str) -> str:
    value = call.request.query_params.get(name, "").strip()
    if not value:
        raise ApiError(f"{name} is required")
    return value


@endpoint()
async def send_verification(call: Call) -> None:
    """GET /api/verification?email= : mail a 6-digit code valid for 10 minutes."""
    email = _query(call, "email")
    await call.deps.accounts.SendEmailCode(
        accounts_pb2.SendEmailCodeRequest(email=email), timeout=_mail_timeout(call.deps)
    )


@endpoint(ROLE_COMMON)
async def bind_email(call: Call) -> dict[str, Any]:
    """GET /api/oauth/email/bind?email=&code= : bind a verified address to the caller."""
    email, code = _query(call, "email"), _query(call, "code")
    user = await call.deps.accounts.BindEmail(
        accounts_pb2.BindEmailRequest(user_id=call.user_id, email=email, code=code),
        timeout=call.deps.timeout,
    )
    return {"email": user.email}


@endpoint()
async def send_password_reset(call: Call) -> None:
    """GET /api/reset_password?email= : mail a single-use reset link valid for 15 minutes."""
    email = _query(call, "email")
    await call.deps.accounts.SendPasswordReset(
        accounts_pb2.SendPasswordResetRequest(email=email), timeout=_mail_timeout(call.deps)
    )


@endpoint()
async def reset_password(call: Call) -> str:
    """POST /api/user/reset {email, token[, password]} : returns the password now set
    (a random 12-character one, as upstream does, unless `password` is given)."""
    body = await call.json()
    email = str(body.get("email") or "").strip()
    token = str(body.get("token") or "").strip()
    if not email or not token:
        raise ApiError("email and token are required")
    reply = await call.deps.accounts.ResetPassword(
        accounts_pb2.ResetPasswordRequest(
            email=email, token=token, new_password=str(body.get("password") or "")
        ),
        timeout=call.deps.timeout,
    )
    return reply.password


ROUTES = [
    Route("/api/verification", send_verification, methods=["GET"]),
    Route("/api/oauth/email/bind", bind_email, methods=["GET"]),
    Route("/api/reset_password", send_password_reset, methods=["GET"]),
    Route("/api/user/reset", reset_password, methods=["POST"]),
]
