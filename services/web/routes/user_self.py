"""Self-service account endpoints: registration, profile, settings, groups, invites, sessions."""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.responses import Response
from starlette.routing import Route
from veloera.accounts.v1 import accounts_pb2
from veloera.billing.v1 import billing_pb2

from services.web.api import ROLE_COMMON, ApiError, Call, endpoint, ok
from services.web.convert import SECRET_MASK
from services.web.deps import Deps
from services.web.session import COOKIE_NAME, unsign


async def group_ratios(call: Call) -> dict[str, float]:
    """GroupRatio from billing (group name -> ratio); a broken value yields {}."""
    reply = await call.deps.billing.GetPricingOptions(
        billing_pb2.GetPricingOptionsRequest(), timeout=call.deps.timeout
    )
    for option in reply.options:
        if option.key == "GroupRatio":
            try:
                parsed = json.loads(option.value)
            except ValueError:
                return {}
            return {str(k): float(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}
    return {}


async def _groups(call: Call, user_id: int) -> dict[str, dict[str, Any]]:
    reply = await call.deps.accounts.GetUsableGroups(
        accounts_pb2.GetUsableGroupsRequest(user_id=user_id), timeout=call.deps.timeout
    )
    ratios = await group_ratios(call)
    return {
        name: {"ratio": ratios.get(name, 1.0), "desc": desc}
        for name, desc in sorted(reply.groups.items())
        if name in ratios
    }


@endpoint()
async def register(call: Call) -> None:
    body = await call.json()
    password = str(body.get("password") or "")
    confirm = body.get("password2", body.get("confirmPassword"))
    if confirm is not None and str(confirm) != password:
        raise ApiError("the two passwords do not match")
    deps = call.deps
    reply = await deps.accounts.Register(
        accounts_pb2.RegisterRequest(
            username=str(body.get("username") or "").strip(),
            password=password,
            email=str(body.get("email") or "").strip(),
            aff_code=str(body.get("aff_code") or body.get("aff") or "").strip(),
            display_name=str(body.get("display_name") or ""),
            verification_code=str(body.get("verification_code") or "").strip(),
        ),
        timeout=deps.timeout,
    )
    await after_signup(deps, reply.user, reply.default_token)


async def after_signup(
    deps: Deps, user: accounts_pb2.User, default_token: accounts_pb2.Token
) -> None:
    """What every new account gets, however it signed up: the new-user, invitee and inviter
    rewards (options QuotaFor*; idempotent per user) and its initial key's budget."""
    await deps.billing.GrantSignupRewards(
        billing_pb2.GrantSignupRewardsRequest(user_id=user.id, inviter_id=user.inviter_id),
        timeout=deps.timeout,
    )
    if default_token.id:
        await deps.billing.SetTokenBudget(
            billing_pb2.SetTokenBudgetRequest(
                token_id=default_token.id, user_id=user.id, remain_quota=0, unlimited=True
            ),
            timeout=deps.timeout,
        )


@endpoint()
async def public_groups(call: Call) -> dict[str, dict[str, Any]]:
    return await _groups(call, 0)


@endpoint(ROLE_COMMON)
async def self_groups(call: Call) -> dict[str, dict[str, Any]]:
    return await _groups(call, call.user_id)


@endpoint(ROLE_COMMON)
async def update_self(call: Call) -> None:
    body = await call.json()
    request = accounts_pb2.UpdateUserRequest(actor_id=call.user_id, id=call.user_id)
    for name in ("username", "display_name"):
        if body.get(name) is not None:
            setattr(request, name, str(body[name]).strip())
    if body.get("password"):
        request.password = str(body["password"])
        request.old_password = str(body.get("original_password") or "")
        # Accounts revokes the other sessions and the access token; this session stays.
        request.keep_session_id = _current_session(call)
    if body.get("password") and not request.old_password:
        raise ApiError("the current password (original_password) is required")
    await call.deps.accounts.UpdateUser(request, timeout=call.deps.timeout)


@endpoint(ROLE_COMMON)
async def delete_self(call: Call) -> Response:
    await call.deps.accounts.DeleteUser(
        accounts_pb2.DeleteUserRequest(actor_id=call.user_id, id=call.user_id),
        timeout=call.deps.timeout,
    )
    response = ok()
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="lax")
    return response


def _settings_of(user: accounts_pb2.User) -> dict[str, Any]:
    try:
        parsed = json.loads(user.setting) if user.setting else {}
    except ValueError:
        parsed = {}
    return parsed if isinstance(parsed, dict) else {}


_SETTING_FIELDS = (
    "notify_type",
    "quota_warning_threshold",
    "webhook_url",
    "webhook_secret",
    "notification_email",
    "accept_unset_model_ratio_model",
    "show_ip_in_logs",
)


@endpoint(ROLE_COMMON)
async def update_setting(call: Call) -> dict[str, Any]:
    body = await call.json()
    unknown = set(body) - set(_SETTING_FIELDS)
    if unknown:
        raise ApiError(f"unknown setting fields: {', '.join(sorted(unknown))}")
    if body.get("webhook_secret") == SECRET_MASK:
        del body["webhook_secret"]  # the form sent back the masked value: keep the secret
    merged = {**_settings_of(call.user), **body}
    user = await call.deps.accounts.UpdateUser(
        accounts_pb2.UpdateUserRequest(
            actor_id=call.user_id, id=call.user_id, setting=orjson.dumps(merged).decode()
        ),
        timeout=call.deps.timeout,
    )
    settings = _settings_of(user)
    if settings.get("webhook_secret"):
        settings["webhook_secret"] = SECRET_MASK
    return settings


@endpoint(ROLE_COMMON)
async def get_aff(call: Call) -> str:
    return call.user.aff_code


def _current_session(call: Call) -> str:
    cookie = call.request.cookies.get(COOKIE_NAME, "")
    return (unsign(call.deps.settings.session_secret.value, cookie) if cookie else None) or ""


@endpoint(ROLE_COMMON)
async def list_sessions(call: Call) -> list[dict[str, Any]]:
    reply = await call.deps.accounts.ListSessions(
        accounts_pb2.ListSessionsRequest(
            user_id=call.user_id, current_session_id=_current_session(call)
        ),
        timeout=call.deps.timeout,
    )
    return [
        {
            "id": s.id,
            "created_at": s.created_time,
            "expires_at": s.expire_time,
            "ip": s.client_ip,
            "user_agent": s.user_agent,
            "current": s.current,
        }
        for s in reply.sessions
    ]


@endpoint(ROLE_COMMON)
async def revoke_session(call: Call) -> None:
    await call.deps.accounts.RevokeSession(
        accounts_pb2.RevokeSessionRequest(user_id=call.user_id, id=call.path_int("id")),
        timeout=call.deps.timeout,
    )


ROUTES = [
    Route("/api/user/register", register, methods=["POST"]),
    Route("/api/user/groups", public_groups, methods=["GET"]),
    Route("/api/user/self/groups", self_groups, methods=["GET"]),
    Route("/api/user/self", update_self, methods=["PUT"]),
    Route("/api/user/self", delete_self, methods=["DELETE"]),
    Route("/api/user/setting", update_setting, methods=["PUT"]),
    Route("/api/user/aff", get_aff, methods=["GET"]),
    Route("/api/user/sessions", list_sessions, methods=["GET"]),
    Route("/api/user/sessions/{id:int}", revoke_session, methods=["DELETE"]),
]
