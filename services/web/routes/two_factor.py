"""TOTP two-factor authentication in the console (beyond upstream Veloera; new-api has it):
enrol from personal settings (a secret shown as a QR code, confirmed with a first code, which
returns the one-time backup codes), the login's second step, disable, new backup codes, and
an administrator's reset. Accounts checks the codes; the web only carries them. The QR code
is drawn here (segno, SVG) so the console needs no script from elsewhere."""

from __future__ import annotations

from typing import Any, TypeVar

import segno
from starlette.responses import Response
from starlette.routing import Route
from veloera.accounts.v1 import accounts_pb2

from services.web import flow
from services.web.api import ROLE_ADMIN, ROLE_COMMON, ApiError, Call, endpoint
from services.web.client_ip import client_ip
from services.web.options_cache import options_cache
from services.web.routes.users import signed_in, target_user

MAX_CODE = 32
EXPIRED = "the sign-in has expired, please log in with your password again"


async def _code(call: Call) -> str:
    body = await call.json()
    code = body.get("code")
    if not isinstance(code, str | int) or not str(code).strip():
        raise ApiError("enter the code from your authenticator app (or a backup code)")
    code = str(code).strip()
    if len(code) > MAX_CODE:
        raise ApiError("the code is too long")
    return code


CodeRequest = TypeVar(
    "CodeRequest",
    accounts_pb2.EnableTwoFactorRequest,
    accounts_pb2.DisableTwoFactorRequest,
    accounts_pb2.RegenerateBackupCodesRequest,
)


async def _code_request(call: Call, kind: type[CodeRequest]) -> CodeRequest:
    """The change's request with the signed-in user's code (a wrong one counts as a failed
    login attempt from the client's address)."""
    return kind(
        user_id=call.user_id, code=await _code(call),
        client_ip=await client_ip(call.request, call.deps),
    )  # fmt: skip


def qr_svg_data_uri(text: str) -> str:
    """`text` as a QR code image the console shows in an <img>."""
    return str(segno.make(text, error="m").svg_data_uri(scale=5, border=2))


@endpoint(ROLE_COMMON)
async def status(call: Call) -> dict[str, Any]:
    reply = await call.deps.accounts.GetTwoFactorStatus(
        accounts_pb2.GetTwoFactorStatusRequest(user_id=call.user_id), timeout=call.deps.timeout
    )
    return {"enabled": reply.enabled, "backup_codes_left": reply.backup_codes_left}


@endpoint(ROLE_COMMON)
async def setup(call: Call) -> dict[str, Any]:
    """POST /api/user/2fa/setup: a new secret (replacing one not yet confirmed)."""
    options = await options_cache(call.request).get(call.deps)
    reply = await call.deps.accounts.BeginTwoFactorSetup(
        accounts_pb2.BeginTwoFactorSetupRequest(
            user_id=call.user_id, issuer=options.get("SystemName", "") or "Veloera"
        ),
        timeout=call.deps.timeout,
    )
    return {
        "secret": reply.secret,
        "otpauth_uri": reply.otpauth_uri,
        "qr_code": qr_svg_data_uri(reply.otpauth_uri),
    }


@endpoint(ROLE_COMMON)
async def enable(call: Call) -> dict[str, Any]:
    """POST /api/user/2fa/enable {code}: the first code confirms the secret; the backup codes
    are in this answer only."""
    request = await _code_request(call, accounts_pb2.EnableTwoFactorRequest)
    reply = await call.deps.accounts.EnableTwoFactor(request, timeout=call.deps.timeout)
    return {"enabled": True, "backup_codes": list(reply.codes)}


@endpoint(ROLE_COMMON)
async def disable(call: Call) -> dict[str, Any]:
    """POST /api/user/2fa/disable {code}: a TOTP or a backup code turns it off."""
    request = await _code_request(call, accounts_pb2.DisableTwoFactorRequest)
    await call.deps.accounts.DisableTwoFactor(request, timeout=call.deps.timeout)
    return {"enabled": False}


@endpoint(ROLE_COMMON)
async def backup_codes(call: Call) -> dict[str, Any]:
    """POST /api/user/2fa/backup_codes {code}: new backup codes; the old ones stop working."""
    request = await _code_request(call, accounts_pb2.RegenerateBackupCodesRequest)
    reply = await call.deps.accounts.RegenerateBackupCodes(request, timeout=call.deps.timeout)
    return {"backup_codes": list(reply.codes)}


@endpoint(ROLE_ADMIN)
async def admin_reset(call: Call) -> dict[str, Any]:
    """DELETE /api/user/{id}/2fa: for a user who lost the authenticator and the codes."""
    user = await target_user(call, call.path_int("id"))
    await call.deps.accounts.ResetTwoFactor(
        accounts_pb2.ResetTwoFactorRequest(user_id=user.id), timeout=call.deps.timeout
    )
    return {"enabled": False}


@endpoint()
async def login_second_step(call: Call) -> Response:
    """POST /api/user/login/2fa {code}: the session, once the code of the user whose
    password was just accepted is right. A wrong code leaves the wait in place (until it
    expires or the login guard locks further tries)."""
    deps = call.deps
    data = flow.read(call.request, deps)
    user_id = flow.pending_two_factor(data)
    if user_id is None:
        raise ApiError(EXPIRED)
    code = await _code(call)
    reply = await deps.accounts.CompleteTwoFactorLogin(
        accounts_pb2.CompleteTwoFactorLoginRequest(
            user_id=user_id, code=code, client_ip=await client_ip(call.request, deps),
            user_agent=call.request.headers.get("user-agent", ""),
        ),
        timeout=deps.timeout,
    )  # fmt: skip
    response = signed_in(call, reply.user, reply.session_id, reply.expire_time)
    data.pop("tfa_user", None)
    data.pop("tfa_until", None)
    flow.set_cookie(response, call.request, deps, data)
    return response


ROUTES = [
    Route("/api/user/login/2fa", login_second_step, methods=["POST"]),
    Route("/api/user/2fa/status", status, methods=["GET"]),
    Route("/api/user/2fa/setup", setup, methods=["POST"]),
    Route("/api/user/2fa/enable", enable, methods=["POST"]),
    Route("/api/user/2fa/disable", disable, methods=["POST"]),
    Route("/api/user/2fa/backup_codes", backup_codes, methods=["POST"]),
    Route("/api/user/{id:int}/2fa", admin_reset, methods=["DELETE"]),
]
