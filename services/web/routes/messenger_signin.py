"""Sign-in with Telegram and WeChat (controller/telegram.go, controller/wechat.go), which are
not OAuth 2: the Telegram login widget hands the browser fields signed with the bot token
(HMAC-SHA256 keyed with SHA256(bot token)), checked here along with their age; WeChat goes
through the external "WeChat server", which turns the code the user got from the official
account into an open id (`{WeChatServerAddress}/api/wechat/user?code=`, the server token in
Authorization). Both log in, register or (for a signed-in caller, or on the /bind routes)
bind, as the OAuth callbacks do."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

import httpx
from starlette.responses import Response
from starlette.routing import Route

from services.web import flow
from services.web.api import ROLE_COMMON, ApiError, Call, endpoint
from services.web.oauth_providers import Identity
from services.web.one_time import first_use
from services.web.routes.oauth import bind, enabled_options, sign_in, signed_in_user

logger = logging.getLogger(__name__)

# A widget login older than this is refused (a leaked link cannot be replayed for long).
TELEGRAM_MAX_AGE_SECONDS = 3600
TELEGRAM_ONCE_SECONDS = TELEGRAM_MAX_AGE_SECONDS + 60
TELEGRAM_FIELDS = ("id", "first_name", "last_name", "username", "photo_url", "auth_date")
MAX_CODE = 64


def telegram_hash(fields: dict[str, str], bot_token: str) -> str:
    """The widget's `hash`: HMAC-SHA256 of the sorted `key=value` lines, keyed with
    SHA256(bot token) (core.telegram.org/widgets/login#checking-authorization)."""
    check = "\n".join(f"{key}={fields[key]}" for key in sorted(fields))
    key = hashlib.sha256(bot_token.encode()).digest()
    return hmac.new(key, check.encode(), hashlib.sha256).hexdigest()


def telegram_identity(params: dict[str, str], bot_token: str, at: float) -> Identity:
    fields = {key: params[key] for key in TELEGRAM_FIELDS if params.get(key)}
    given = params.get("hash", "")
    if not fields.get("id") or not given or not bot_token:
        raise ApiError("the Telegram login is incomplete, please try again")
    if not hmac.compare_digest(telegram_hash(fields, bot_token), given.lower()):
        raise ApiError("the Telegram login could not be verified", 403)
    try:
        auth_date = int(fields.get("auth_date", "0"))
    except ValueError:
        auth_date = 0
    if not 0 < at - auth_date < TELEGRAM_MAX_AGE_SECONDS:
        raise ApiError("the Telegram login has expired, please log in with Telegram again", 403)
    name = " ".join(filter(None, (fields.get("first_name"), fields.get("last_name"))))
    return Identity(fields["id"], name or fields.get("username", ""), "")


async def _telegram(call: Call, *, bind_only: bool) -> Response:
    options = await enabled_options(call, "telegram")
    params = dict(call.request.query_params)
    identity = telegram_identity(params, options.get("TelegramBotToken", ""), time.time())
    # The signed fields are a bearer credential until they expire: accepted once.
    if not await first_use(call.deps, "telegram_login", params["hash"], TELEGRAM_ONCE_SECONDS):
        raise ApiError("this Telegram login was already used, please log in with Telegram again")
    return await _finish(call, "telegram", identity, bind_only=bind_only)


async def wechat_open_id(call: Call, options: dict[str, str], code: str) -> str:
    """The open id the WeChat server has for `code` (the verification code the official
    account sent the user)."""
    server = options.get("WeChatServerAddress", "").rstrip("/")
    if not server:
        raise ApiError("WeChat sign-in is not fully configured")
    try:
        async with httpx.AsyncClient(timeout=call.deps.settings.oauth_timeout) as client:
            reply = await client.get(
                f"{server}/api/wechat/user", params={"code": code},
                headers={"Authorization": options.get("WeChatServerToken", "")},
            )  # fmt: skip
            reply.raise_for_status()
            body = reply.json()
    except (httpx.HTTPError, ValueError) as exc:
        logger.warning("WeChat server call failed: %s", type(exc).__name__)
        raise ApiError("cannot reach the WeChat server, please retry later", 502) from exc
    if not isinstance(body, dict):
        raise ApiError("the WeChat server answered something unreadable", 502)
    if not body.get("success"):
        raise ApiError(str(body.get("message") or "the WeChat server refused the code"))
    open_id = body.get("data")
    if not isinstance(open_id, str) or not open_id:
        raise ApiError("the verification code is wrong or has expired")
    return open_id


async def _wechat(call: Call, *, bind_only: bool) -> Response:
    options = await enabled_options(call, "wechat")
    code = call.request.query_params.get("code", "").strip()
    if not code or len(code) > MAX_CODE:
        raise ApiError("enter the verification code the WeChat account sent you")
    open_id = await wechat_open_id(call, options, code)
    return await _finish(call, "wechat", Identity(open_id, "", ""), bind_only=bind_only)


async def _finish(call: Call, provider: str, identity: Identity, *, bind_only: bool) -> Response:
    user = await signed_in_user(call)
    if user is not None:
        return await bind(call, provider, user, identity)
    if bind_only:
        raise ApiError("log in first to bind an account", 401)
    data = flow.read(call.request, call.deps)
    aff = str(call.request.query_params.get("aff", "")).strip()[:32]
    response = await sign_in(call, provider, identity, aff, data)
    flow.set_cookie(response, call.request, call.deps, data)
    return response


@endpoint()
async def telegram_login(call: Call) -> Response:
    return await _telegram(call, bind_only=False)


@endpoint(ROLE_COMMON)
async def telegram_bind(call: Call) -> Response:
    return await _telegram(call, bind_only=True)


@endpoint()
async def wechat_login(call: Call) -> Response:
    return await _wechat(call, bind_only=False)


@endpoint(ROLE_COMMON)
async def wechat_bind(call: Call) -> Response:
    return await _wechat(call, bind_only=True)


ROUTES = [
    Route("/api/oauth/telegram/login", telegram_login, methods=["GET"]),
    Route("/api/oauth/telegram/bind", telegram_bind, methods=["GET"]),
    Route("/api/oauth/wechat", wechat_login, methods=["GET"]),
    Route("/api/oauth/wechat/bind", wechat_bind, methods=["GET"]),
]
