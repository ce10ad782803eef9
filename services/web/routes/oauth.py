"""Third-party sign-in over OAuth 2 (controller/oauth_common.go, controller/github.go,
controller/oidc.go, controller/linuxdo.go, controller/idcflare.go): `GET /api/oauth/state`
keeps a one-time state and the invite code in the flow cookie; the provider sends the browser
back to the console's `/oauth/<provider>` page, which calls
`GET /api/oauth/<provider>?code=&state=`. That logs in the bound user, registers a new one
(RegisterEnabled; signup rewards and the invite applied) or, for a signed-in caller, binds the
identity. `DELETE /api/oauth/<provider>/bind` unbinds it (Telegram and WeChat too; their
sign-in is in messenger_signin). Accounts owns the identities; the critical rate limit covers
every `/api/oauth/` path."""

from __future__ import annotations

import secrets
import time
from typing import Any

from starlette.responses import Response
from starlette.routing import Route
from veloera.accounts.v1 import accounts_pb2

from services.web import flow
from services.web.api import ROLE_COMMON, ApiError, Call, authenticate, endpoint, ok
from services.web.client_ip import client_ip, over_https
from services.web.oauth_providers import (
    Identity,
    ProviderError,
    discourse_identity,
    discovery_cache,
    github_identity,
    oidc_identity,
)
from services.web.options_cache import secret_options_cache
from services.web.routes.user_self import after_signup
from services.web.routes.users import TWO_FACTOR_REQUIRED, signed_in

ENABLED_OPTION = {
    "github": "GitHubOAuthEnabled",
    "oidc": "oidc.enabled",
    "linuxdo": "LinuxDOOAuthEnabled",
    "idcflare": "IDCFlareOAuthEnabled",
    "telegram": "TelegramOAuthEnabled",
    "wechat": "WeChatAuthEnabled",
}
LABEL = {
    "github": "GitHub",
    "oidc": "OIDC",
    "linuxdo": "LinuxDO",
    "idcflare": "IDC Flare",
    "telegram": "Telegram",
    "wechat": "WeChat",
}
STATE_BYTES = 9  # 12 URL-safe characters, as upstream's state
BAD_STATE = "state is empty or does not match; please start the sign-in again"


@endpoint()
async def new_state(call: Call) -> Response:
    """GET /api/oauth/state?aff= : a fresh state, remembered (with the invite code) until the
    provider sends the browser back."""
    state = secrets.token_urlsafe(STATE_BYTES)
    data = flow.read(call.request, call.deps)
    data.update(
        oauth_state=state,
        oauth_state_until=int(time.time()) + flow.OAUTH_STATE_SECONDS,
        oauth_aff=call.request.query_params.get("aff", "").strip()[:32],
    )
    response = ok(state)
    flow.set_cookie(response, call.request, call.deps, data)
    return response


def _take_state(call: Call) -> tuple[dict[str, Any], str]:
    """The flow state without the OAuth state (which works once) and the invite code; a
    missing, expired or different state is refused before the provider is called."""
    data = flow.read(call.request, call.deps)
    expected = data.pop("oauth_state", None)
    until = data.pop("oauth_state_until", 0)
    aff = str(data.pop("oauth_aff", "") or "")
    given = call.request.query_params.get("state", "")
    fresh = isinstance(until, int) and until > time.time()
    if not (isinstance(expected, str) and given and fresh):
        raise ApiError(BAD_STATE, 403)
    if not secrets.compare_digest(expected.encode(), given.encode()):
        raise ApiError(BAD_STATE, 403)
    return data, aff


async def signed_in_user(call: Call) -> accounts_pb2.User | None:
    """The caller when a valid console session (cookie and Veloera-User) comes along."""
    try:
        return await authenticate(call.request, call.deps)
    except ApiError:
        return None


def _redirect_uri(call: Call, provider: str) -> str:
    """The console page the provider sent the browser back to, as the browser sees the
    console (the login page builds the same one from its own origin)."""
    url = call.request.base_url
    if over_https(call.request, call.deps):
        url = url.replace(scheme="https")
    return f"{str(url).rstrip('/')}/oauth/{provider}"


async def _identity(call: Call, provider: str, options: dict[str, str], code: str) -> Identity:
    if provider == "github":
        return await github_identity(call.deps, options, code)
    if provider in ("linuxdo", "idcflare"):
        return await discourse_identity(
            call.deps, provider, options, code, _redirect_uri(call, provider)
        )
    return await oidc_identity(
        call.deps, discovery_cache(call.request), options, code,
        _redirect_uri(call, provider),
    )  # fmt: skip


async def enabled_options(call: Call, provider: str) -> dict[str, str]:
    """The options (secrets included) once the provider's sign-in is switched on."""
    options = await secret_options_cache(call.request).get(call.deps)
    if options.get(ENABLED_OPTION[provider]) != "true":
        raise ApiError(f"the administrator has not enabled {LABEL[provider]} sign-in")
    return options


async def _finish(call: Call, provider: str) -> Response:
    options = await enabled_options(call, provider)
    code = call.request.query_params.get("code", "").strip()
    flow_data, aff = _take_state(call)
    if not code:
        raise ApiError("the provider sent no authorization code (was consent denied?)")
    try:
        identity = await _identity(call, provider, options, code)
    except ProviderError as exc:
        raise ApiError(exc.message, exc.status) from exc
    user = await signed_in_user(call)
    if user is not None:
        response = await bind(call, provider, user, identity)
    else:
        response = await sign_in(call, provider, identity, aff, flow_data)
    flow.set_cookie(response, call.request, call.deps, flow_data)
    return response


async def bind(call: Call, provider: str, user: accounts_pb2.User, identity: Identity) -> Response:
    await call.deps.accounts.BindIdentity(
        accounts_pb2.BindIdentityRequest(
            user_id=user.id, provider=provider, subject=identity.subject
        ),
        timeout=call.deps.timeout,
    )
    return ok({"action": "bind", "provider": provider}, message="bind")


async def sign_in(
    call: Call, provider: str, identity: Identity, aff: str, flow_data: dict[str, Any]
) -> Response:
    deps = call.deps
    reply = await deps.accounts.SignInWithIdentity(
        accounts_pb2.SignInWithIdentityRequest(
            provider=provider, subject=identity.subject, display_name=identity.display_name,
            email=identity.email, aff_code=aff,
            client_ip=await client_ip(call.request, deps),
            user_agent=call.request.headers.get("user-agent", ""),
        ),
        timeout=deps.timeout,
    )  # fmt: skip
    if reply.created:
        await after_signup(deps, reply.user, reply.default_token)
    if reply.two_factor_required:
        flow.start_two_factor(flow_data, reply.user.id)
        return ok({"require_2fa": True}, message=TWO_FACTOR_REQUIRED)
    return signed_in(call, reply.user, reply.session_id, reply.expire_time)


def _callback(provider: str) -> Any:
    async def callback(call: Call) -> Response:
        return await _finish(call, provider)

    callback.__name__ = f"{provider}_callback"
    return endpoint()(callback)


def _unbind(provider: str) -> Any:
    async def unbind(call: Call) -> dict[str, Any]:
        user = await call.deps.accounts.UnbindIdentity(
            accounts_pb2.UnbindIdentityRequest(user_id=call.user_id, provider=provider),
            timeout=call.deps.timeout,
        )
        return {
            "github_id": user.github_id, "oidc_id": user.oidc_id,
            "linux_do_id": user.linux_do_id, "idc_flare_id": user.idc_flare_id,
            "telegram_id": user.telegram_id, "wechat_id": user.wechat_id,
        }  # fmt: skip

    unbind.__name__ = f"{provider}_unbind"
    return endpoint(ROLE_COMMON)(unbind)


ROUTES = [
    Route("/api/oauth/state", new_state, methods=["GET"]),
    Route("/api/oauth/github", _callback("github"), methods=["GET"]),
    Route("/api/oauth/oidc", _callback("oidc"), methods=["GET"]),
    Route("/api/oauth/linuxdo", _callback("linuxdo"), methods=["GET"]),
    Route("/api/oauth/idcflare", _callback("idcflare"), methods=["GET"]),
    *(
        Route(f"/api/oauth/{provider}/bind", _unbind(provider), methods=["DELETE"])
        for provider in ENABLED_OPTION
    ),
]
