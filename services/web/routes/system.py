"""Public system endpoints: status, first-run setup, attribution, health and metrics."""

from __future__ import annotations

import asyncio
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from veloera.accounts.v1 import accounts_pb2
from veloera.billing.v1 import billing_pb2

import services
from services.shared.channel_types import MIDJOURNEY_TYPES, SUNO
from services.web.api import ApiError, Call, endpoint
from services.web.deps import Deps
from services.web.oauth_providers import ProviderError, discovery_cache, oidc_endpoints
from services.web.options_cache import options_cache, secret_options_cache

VELOERA_PROJ = Path(services.__file__).resolve().parent.parent / "VELOERA_PROJ"
ROOT_INITIAL_QUOTA = 100_000_000
MAX_USERNAME_LENGTH = 12
MIN_PASSWORD_LENGTH = 8
# /api/status waits this long for OIDC discovery before reporting OIDC off.
DISCOVERY_WAIT_SECONDS = 2.0


def _version() -> str:
    try:
        return "v" + version("veloera-py")
    except PackageNotFoundError:
        return "v0.0.0"


def _flag(options: dict[str, str], key: str, default: bool) -> bool:
    raw = options.get(key)
    return default if raw is None or raw == "" else raw.strip().lower() == "true"


def _int(options: dict[str, str], key: str, default: int) -> int:
    try:
        return int(float(options.get(key, "") or default))
    except ValueError:
        return default


def _float(options: dict[str, str], key: str, default: float) -> float:
    try:
        return float(options.get(key, "") or default)
    except ValueError:
        return default


async def _all_options(call: Call) -> dict[str, str]:
    """Accounts' public options (cached a few seconds) overlaid with billing's pricing ones."""
    deps = call.deps
    accounts, pricing = await asyncio.gather(
        options_cache(call.request).get(deps),
        deps.billing.GetPricingOptions(
            billing_pb2.GetPricingOptionsRequest(), timeout=deps.timeout
        ),
    )
    merged = dict(accounts)
    merged.update({o.key: o.value for o in pricing.options})
    return merged


def _chats(raw: str) -> list[Any]:
    try:
        parsed = json.loads(raw or "[]")
    except ValueError:
        return []
    return parsed if isinstance(parsed, list) else []


# Each sign-in method with the options it needs to work: it is advertised only when switched
# on and all of them are set (a secret cleared after the switch was turned on switches it off).
SIGN_IN_METHODS = {
    "github_oauth": ("GitHubOAuthEnabled", "GitHubClientId", "GitHubClientSecret"),
    "linuxdo_oauth": ("LinuxDOOAuthEnabled", "LinuxDOClientId", "LinuxDOClientSecret"),
    "idcflare_oauth": ("IDCFlareOAuthEnabled", "IDCFlareClientId", "IDCFlareClientSecret"),
    "telegram_oauth": ("TelegramOAuthEnabled", "TelegramBotName", "TelegramBotToken"),
    "wechat_login": ("WeChatAuthEnabled", "WeChatServerAddress", "WeChatServerToken"),
    "oidc_enabled": ("oidc.enabled", "oidc.client_id"),
}


def _configured(secrets: dict[str, str], method: str) -> bool:
    switch, *needed = SIGN_IN_METHODS[method]
    return _flag(secrets, switch, False) and all(secrets.get(key) for key in needed)


def _auth_status(options: dict[str, str], secrets: dict[str, str]) -> dict[str, Any]:
    """Sign-in methods with the public parts of their configuration (upstream
    `controller/misc.go`); `secrets` are the options with their secrets, only ever used to
    tell whether a method is configured."""
    opt = options.get
    return {
        "email_verification": _flag(options, "EmailVerificationEnabled", False),
        "github_client_id": opt("GitHubClientId", ""),
        "linuxdo_client_id": opt("LinuxDOClientId", ""),
        "linuxdo_minimum_trust_level": _int(options, "LinuxDOMinimumTrustLevel", 0),
        "idcflare_client_id": opt("IDCFlareClientId", ""),
        "idcflare_minimum_trust_level": _int(options, "IDCFlareMinimumTrustLevel", 0),
        "telegram_bot_name": opt("TelegramBotName", ""),
        "wechat_qrcode": opt("WeChatAccountQRCodeImageURL", ""),
        "oidc_client_id": opt("oidc.client_id", ""),
        "oidc_authorization_endpoint": opt("oidc.authorization_endpoint", ""),
        "turnstile_check": _flag(options, "TurnstileCheckEnabled", False),
        "turnstile_site_key": opt("TurnstileSiteKey", ""),
        "password_login_enabled": _flag(options, "PasswordLoginEnabled", True),
        "password_register_enabled": _flag(options, "PasswordRegisterEnabled", True),
        "register_enabled": _flag(options, "RegisterEnabled", True),
        # WebAuthn and TOTP need no configuration: the console offers them everywhere.
        "passkey_login": True,
        **{method: _configured(secrets, method) for method in SIGN_IN_METHODS},
    }


@endpoint()
async def get_status(call: Call) -> dict[str, Any]:
    deps = call.deps
    setup, options, secrets = await asyncio.gather(
        deps.accounts.GetSetupStatus(accounts_pb2.GetSetupStatusRequest(), timeout=deps.timeout),
        _all_options(call),
        secret_options_cache(call.request).get(deps),
    )
    opt = options.get
    return {
        "version": _version(),
        "start_time": deps.started_at,
        "system_name": opt("SystemName") or "Veloera",
        "logo": opt("Logo", ""),
        "footer_html": opt("Footer", ""),
        "server_address": opt("ServerAddress") or deps.settings.relay_public_url,
        "price": _float(options, "Price", 7.3),
        "min_topup": _int(options, "MinTopUp", 1),
        "top_up_link": opt("TopUpLink", ""),
        "docs_link": opt("general_setting.docs_link", ""),
        "quota_per_unit": _int(options, "QuotaPerUnit", 500_000),
        "display_in_currency": _flag(options, "DisplayInCurrencyEnabled", True),
        "display_token_stat": _flag(options, "DisplayTokenStatEnabled", True),
        "enable_batch_update": False,
        **await _task_features(call, options),
        "enable_data_export": _flag(options, "DataExportEnabled", True),
        "data_export_default_time": opt("DataExportDefaultTime") or "hour",
        "default_collapse_sidebar": _flag(options, "DefaultCollapseSidebar", False),
        # As upstream's status: EPay is offered once its gateway and merchant are configured.
        "enable_online_topup": bool(opt("PayAddress") and opt("EpayId")),
        "mj_notify_enabled": _flag(options, "MjNotifyEnabled", False),
        "chats": _chats(opt("Chats", "[]")),
        "demo_site_enabled": _flag(options, "DemoSiteEnabled", False),
        "self_use_mode_enabled": _flag(options, "SelfUseModeEnabled", False),
        "setup": setup.initialized,
        "check_in_enabled": _flag(options, "CheckInEnabled", False),
        "aff_enabled": _flag(options, "AffEnabled", True),
        "log_chat_content_enabled": _flag(options, "LogChatContentEnabled", False),
        **_auth_status(options, secrets),
        **await _oidc_status(call, secrets),
    }


async def _has_enabled_channel(call: Call, types: frozenset[int]) -> bool:
    deps = call.deps
    reply = await deps.accounts.ListChannels(
        accounts_pb2.ListChannelsRequest(
            page=1,
            page_size=1,
            types=sorted(types),
            statuses=[accounts_pb2.CHANNEL_STATUS_ENABLED],
        ),
        timeout=deps.timeout,
    )
    return reply.total > 0


async def _task_features(call: Call, options: dict[str, str]) -> dict[str, bool]:
    """Drawing (Midjourney) and tasks (Suno) are on when their option is, an enabled channel
    of the platform exists and task state can be read (the console's NATS link is up):
    otherwise the console would offer pages that can only fail."""
    drawing = _flag(options, "DrawingEnabled", True)
    task = _flag(options, "TaskEnabled", True)
    if not call.deps.tasks.connected:
        return {"enable_drawing": False, "enable_task": False}
    if drawing:
        drawing = await _has_enabled_channel(call, MIDJOURNEY_TYPES)
    if task:
        task = await _has_enabled_channel(call, frozenset({SUNO}))
    return {"enable_drawing": drawing, "enable_task": task}


async def _oidc_status(call: Call, options: dict[str, str]) -> dict[str, Any]:
    """With only the well-known URL configured, the console still needs the authorization
    endpoint: it comes from discovery. A provider that cannot be discovered is reported off."""
    if not _flag(options, "oidc.enabled", False) or options.get("oidc.authorization_endpoint"):
        return {}
    try:
        endpoints = await asyncio.wait_for(
            oidc_endpoints(call.deps, discovery_cache(call.request), options),
            DISCOVERY_WAIT_SECONDS,
        )
    except (ProviderError, TimeoutError):
        return {"oidc_enabled": False}
    if not endpoints.authorization:
        return {"oidc_enabled": False}
    return {"oidc_authorization_endpoint": endpoints.authorization}


@endpoint()
async def get_setup(call: Call) -> dict[str, Any]:
    deps = call.deps
    status = await deps.accounts.GetSetupStatus(
        accounts_pb2.GetSetupStatusRequest(), timeout=deps.timeout
    )
    return {
        "status": status.initialized,
        "root_init": status.root_exists,
        "database_type": "postgres",
    }


def _validate_setup(body: dict[str, Any]) -> tuple[str, str]:
    username = str(body.get("username") or "").strip()
    password = str(body.get("password") or "")
    if not username:
        raise ApiError("username is required")
    if len(username) > MAX_USERNAME_LENGTH:
        raise ApiError(f"username must be at most {MAX_USERNAME_LENGTH} characters")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ApiError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if password != str(body.get("confirmPassword") or ""):
        raise ApiError("the two passwords do not match")
    return username, password


@endpoint()
async def post_setup(call: Call) -> None:
    body = await call.json()
    username, password = _validate_setup(body)
    deps = call.deps
    status = await deps.accounts.GetSetupStatus(
        accounts_pb2.GetSetupStatusRequest(), timeout=deps.timeout
    )
    if status.initialized:
        raise ApiError("the system is already initialized")
    root = await deps.accounts.Setup(
        accounts_pb2.SetupRequest(
            username=username,
            password=password,
            self_use_mode=bool(body.get("SelfUseModeEnabled")),
            demo_site_mode=bool(body.get("DemoSiteEnabled")),
        ),
        timeout=deps.timeout,
    )
    await deps.billing.AdjustQuota(
        billing_pb2.AdjustQuotaRequest(
            idempotency_key=f"initial-grant:{root.id}",
            user_id=root.id,
            delta=ROOT_INITIAL_QUOTA,
            kind="grant",
            reason="root user initial quota",
        ),
        timeout=deps.timeout,
    )


async def veloera(request: Request) -> Response:
    """The attribution notice required by Veloera's license, byte for byte."""
    return PlainTextResponse(VELOERA_PROJ.read_text(encoding="utf-8"))


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def _serving(channel: grpc.aio.Channel) -> bool:
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
    except grpc.aio.AioRpcError:
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


async def readyz(request: Request) -> Response:
    deps: Deps | None = getattr(request.app.state, "deps", None)
    if deps is None:
        return PlainTextResponse("starting", status_code=503)
    states = await asyncio.gather(*(_serving(channel) for channel in deps.channels))
    if all(states):
        return PlainTextResponse("ready")
    return PlainTextResponse("backends not serving", status_code=503)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


ROUTES = [
    Route("/api/status", get_status, methods=["GET"]),
    Route("/api/setup", get_setup, methods=["GET"]),
    Route("/api/setup", post_setup, methods=["POST"]),
    Route("/veloera", veloera, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
