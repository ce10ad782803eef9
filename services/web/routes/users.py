"""Login, the caller's own profile, and user management for admins."""

from __future__ import annotations

import time
import uuid
from typing import Any

import grpc
from starlette.responses import Response
from starlette.routing import Route
from veloera.accounts.v1 import accounts_pb2
from veloera.billing.v1 import billing_pb2

from services.shared.errors import error_code_of
from services.web import flow
from services.web.api import ROLE_ADMIN, ROLE_COMMON, ROLE_ROOT, ApiError, Call, endpoint, ok
from services.web.client_ip import client_ip, over_https
from services.web.convert import paged, user_item
from services.web.quota_rules import (
    MAX_QUOTA,
    QuotaChange,
    QuotaEdit,
    QuotaEditRefused,
    SetBalance,
    quota_change,
    stale_message,
)
from services.web.session import COOKIE_NAME, sign, unsign

TWO_FACTOR_REQUIRED = "two-factor authentication required: enter the code from your app"


@endpoint()
async def login(call: Call) -> Response:
    body = await call.json()
    username = str(body.get("username") or "").strip()
    password = str(body.get("password") or "")
    if not username or not password:
        raise ApiError("username and password are required")
    deps = call.deps
    reply = await deps.accounts.Login(
        accounts_pb2.LoginRequest(
            username=username,
            password=password,
            client_ip=await client_ip(call.request, deps),
            user_agent=call.request.headers.get("user-agent", ""),
        ),
        timeout=deps.timeout,
    )
    if reply.two_factor_required:
        return awaiting_second_factor(call, reply.user.id)
    return signed_in(call, reply.user, reply.session_id, reply.expire_time)


def awaiting_second_factor(call: Call, user_id: int) -> Response:
    """The password was right but the user has two-factor authentication on: no session yet,
    the flow cookie remembers whose code `POST /api/user/login/2fa` checks."""
    state = flow.read(call.request, call.deps)
    flow.start_two_factor(state, user_id)
    response = ok({"require_2fa": True}, message=TWO_FACTOR_REQUIRED)
    flow.set_cookie(response, call.request, call.deps, state)
    return response


def signed_in(call: Call, user: accounts_pb2.User, session_id: str, expires_at: int) -> Response:
    """The login answer (the user, as upstream's) with the session cookie set."""
    deps = call.deps
    response = ok(
        {
            "id": user.id,
            "username": user.username,
            "display_name": user.display_name,
            "role": int(user.role),
            "status": int(user.status),
            "group": user.group or "default",
        }
    )
    max_age = max(int(expires_at - time.time()), 60) if expires_at else None
    response.set_cookie(
        COOKIE_NAME,
        sign(deps.settings.session_secret.value, session_id),
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=deps.settings.session_cookie_secure or over_https(call.request, deps),
    )
    return response


@endpoint()
async def logout(call: Call) -> Response:
    """POST is the way to log out. GET stays for new-api console builds that still use it,
    but not from another site (a link elsewhere must not end the session)."""
    deps = call.deps
    if call.request.method == "GET" and call.request.headers.get("sec-fetch-site") == "cross-site":
        raise ApiError("log out with POST /api/user/logout", 403)
    cookie = call.request.cookies.get(COOKIE_NAME, "")
    session_id = unsign(deps.settings.session_secret.value, cookie) if cookie else None
    if session_id:
        await deps.accounts.Logout(
            accounts_pb2.LogoutRequest(session_id=session_id), timeout=deps.timeout
        )
    response = ok()
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="lax")
    return response


async def _with_wallet(call: Call, user: accounts_pb2.User) -> dict[str, Any]:
    wallet = await call.deps.billing.GetWallet(
        billing_pb2.GetWalletRequest(user_id=user.id), timeout=call.deps.timeout
    )
    return user_item(user, wallet)


@endpoint(ROLE_COMMON)
async def get_self(call: Call) -> dict[str, Any]:
    return await _with_wallet(call, call.user)


@endpoint(ROLE_COMMON)
async def issue_access_token(call: Call) -> str:
    reply = await call.deps.accounts.IssueAccessToken(
        accounts_pb2.IssueAccessTokenRequest(user_id=call.user_id), timeout=call.deps.timeout
    )
    return reply.access_token


async def _list(call: Call, keyword: str, group: str) -> dict[str, Any]:
    deps = call.deps
    page, size = call.page()
    reply = await deps.accounts.ListUsers(
        accounts_pb2.ListUsersRequest(
            page=page,
            page_size=size,
            keyword=keyword,
            group=group,
            role=call.query_int("role"),  # type: ignore[arg-type]
            status=call.query_int("status"),  # type: ignore[arg-type]
        ),
        timeout=deps.timeout,
    )
    wallets = await deps.billing.GetWallets(
        billing_pb2.GetWalletsRequest(user_ids=[u.id for u in reply.users]),
        timeout=deps.timeout,
    )
    by_user = {w.user_id: w for w in wallets.wallets}
    items = [user_item(u, by_user.get(u.id, billing_pb2.Wallet())) for u in reply.users]
    return paged(items, reply.total, page, size)


@endpoint(ROLE_ADMIN)
async def list_users(call: Call) -> dict[str, Any]:
    return await _list(call, "", call.request.query_params.get("group", ""))


@endpoint(ROLE_ADMIN)
async def search_users(call: Call) -> dict[str, Any]:
    params = call.request.query_params
    return await _list(call, params.get("keyword", ""), params.get("group", ""))


async def target_user(call: Call, user_id: int, *, write: bool = True) -> accounts_pb2.User:
    """The user an admin acts on; only root may act on users of equal or higher role
    (an admin may read, but not edit, their own record here)."""
    user = await call.deps.accounts.GetUser(
        accounts_pb2.GetUserRequest(id=user_id), timeout=call.deps.timeout
    )
    own_read = not write and user.id == call.user_id
    if call.role != ROLE_ROOT and user.role >= call.role and not own_read:
        raise ApiError("Permission denied: cannot manage a user of equal or higher role")
    return user


@endpoint(ROLE_ADMIN)
async def get_user(call: Call) -> dict[str, Any]:
    return await _with_wallet(call, await target_user(call, call.path_int("id"), write=False))


def _role(value: Any) -> int:
    try:
        role = int(value or ROLE_COMMON)
    except (TypeError, ValueError) as exc:
        raise ApiError("role must be an integer") from exc
    if role not in {ROLE_COMMON, ROLE_ADMIN, ROLE_ROOT}:
        raise ApiError("role must be 1, 10 or 100")
    return role


@endpoint(ROLE_ADMIN)
async def create_user(call: Call) -> dict[str, Any]:
    body = await call.json()
    role = _role(body.get("role"))
    if role >= call.role and call.role != ROLE_ROOT:
        raise ApiError("Permission denied: cannot create a user of equal or higher role")
    username = str(body.get("username") or "").strip()
    user = await call.deps.accounts.CreateUser(
        accounts_pb2.CreateUserRequest(
            actor_id=call.user_id,
            username=username,
            password=str(body.get("password") or ""),
            display_name=str(body.get("display_name") or username),
            role=role,  # type: ignore[arg-type]
            group=str(body.get("group") or ""),
            email=str(body.get("email") or ""),
        ),
        timeout=call.deps.timeout,
    )
    return await _with_wallet(call, user)


def _update_request(
    call: Call, body: dict[str, Any], user_id: int
) -> accounts_pb2.UpdateUserRequest:
    request = accounts_pb2.UpdateUserRequest(actor_id=call.user_id, id=user_id)
    for name in ("username", "display_name", "group", "email"):
        if body.get(name) is not None:
            setattr(request, name, str(body[name]))
    if body.get("password"):
        request.password = str(body["password"])
    return request


_UPDATABLE = ("username", "display_name", "group", "email", "password")


def _optional_int(body: dict[str, Any], name: str, minimum: int) -> int | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    return Call.body_int(body, name, minimum=minimum, maximum=MAX_QUOTA)


def _quota_edit(body: dict[str, Any]) -> QuotaEdit | None:
    edit = QuotaEdit(
        quota=_optional_int(body, "quota", 0),
        original=_optional_int(body, "original_quota", -MAX_QUOTA),
        delta=_optional_int(body, "quota_delta", -MAX_QUOTA),
    )
    return None if edit.quota is None and not edit.delta else edit


async def _planned_quota_change(
    call: Call, body: dict[str, Any], user_id: int
) -> QuotaChange | None:
    """Decided before anything is written, so a stale form changes nothing at all."""
    edit = _quota_edit(body)
    if edit is None:
        return None
    wallet = await call.deps.billing.GetWallet(
        billing_pb2.GetWalletRequest(user_id=user_id), timeout=call.deps.timeout
    )
    try:
        return quota_change(edit, wallet.quota)
    except QuotaEditRefused as exc:
        raise ApiError(exc.message, 400 if exc.out_of_range else 200) from exc


def _adjust_request(
    call: Call, user_id: int, change: QuotaChange
) -> billing_pb2.AdjustQuotaRequest:
    request = billing_pb2.AdjustQuotaRequest(
        idempotency_key=f"admin-edit:{uuid.uuid4()}",
        user_id=user_id,
        actor_id=call.user_id,
        kind="admin",
        reason="admin edit",
    )
    if isinstance(change, SetBalance):
        request.set_to, request.expected = change.value, change.expected
    else:
        request.delta = change.delta
    return request


async def _apply_quota_change(call: Call, user_id: int, change: QuotaChange) -> None:
    try:
        await call.deps.billing.AdjustQuota(
            _adjust_request(call, user_id, change), timeout=call.deps.timeout
        )
    except grpc.aio.AioRpcError as exc:
        # Billing compares under the wallet lock: traffic between our check and the write.
        if isinstance(change, SetBalance) and error_code_of(exc) == "balance_changed":
            raise ApiError(stale_message(change.expected)) from exc
        raise


@endpoint(ROLE_ADMIN)
async def update_user(call: Call) -> dict[str, Any]:
    body = await call.json()
    user_id = call.body_int(body, "id")
    if user_id <= 0:
        raise ApiError("id is required")
    deps = call.deps
    user = await target_user(call, user_id)
    change = await _planned_quota_change(call, body, user_id)
    if any(body.get(name) for name in _UPDATABLE):
        user = await deps.accounts.UpdateUser(
            _update_request(call, body, user_id), timeout=deps.timeout
        )
    # Last, so a failed profile update never leaves a delta applied that a retry would repeat.
    if change is not None:
        await _apply_quota_change(call, user_id, change)
    return await _with_wallet(call, user)


_ACTIONS = frozenset({"disable", "enable", "delete", "promote", "demote"})


@endpoint(ROLE_ADMIN)
async def manage_user(call: Call) -> dict[str, Any]:
    body = await call.json()
    action = str(body.get("action") or "")
    if action not in _ACTIONS:
        raise ApiError("unknown action")
    user_id = call.body_int(body, "id")
    await target_user(call, user_id)
    if action == "promote" and call.role != ROLE_ROOT:
        raise ApiError("Permission denied: only root can promote users")
    user = await call.deps.accounts.ManageUser(
        accounts_pb2.ManageUserRequest(actor_id=call.user_id, id=user_id, action=action),
        timeout=call.deps.timeout,
    )
    return {"role": int(user.role), "status": int(user.status)}


@endpoint(ROLE_ADMIN)
async def delete_user(call: Call) -> None:
    user_id = call.path_int("id")
    await target_user(call, user_id)
    await call.deps.accounts.DeleteUser(
        accounts_pb2.DeleteUserRequest(actor_id=call.user_id, id=user_id, hard=True),
        timeout=call.deps.timeout,
    )


ROUTES = [
    Route("/api/user/login", login, methods=["POST"]),
    Route("/api/user/logout", logout, methods=["POST", "GET"]),
    Route("/api/user/self", get_self, methods=["GET"]),
    Route("/api/user/token", issue_access_token, methods=["GET"]),
    Route("/api/user/search", search_users, methods=["GET"]),
    Route("/api/user/manage", manage_user, methods=["POST"]),
    Route("/api/user/", list_users, methods=["GET"]),
    Route("/api/user/", create_user, methods=["POST"]),
    Route("/api/user/", update_user, methods=["PUT"]),
    Route("/api/user/{id:int}", get_user, methods=["GET"]),
    Route("/api/user/{id:int}", delete_user, methods=["DELETE"]),
]
