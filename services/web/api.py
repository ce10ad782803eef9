"""The management API's envelope, dashboard authentication and gRPC error mapping."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import orjson
from starlette.requests import Request
from starlette.responses import Response
from veloera.accounts.v1 import accounts_pb2

from services.shared.numbers import ascii_int
from services.shared.statuses import Role
from services.web.deps import Deps
from services.web.metrics import RPC_ERRORS
from services.web.session import COOKIE_NAME, unsign

logger = logging.getLogger(__name__)

ROLE_GUEST, ROLE_COMMON = Role.GUEST, Role.COMMON
ROLE_ADMIN, ROLE_ROOT = Role.ADMIN, Role.ROOT

USER_HEADER = "veloera-user"
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
MAX_PAGE = 2**31 - 1  # page numbers are int32 in the protos
# Ids, timestamps and amounts travel as protobuf int64: anything outside is a bad request.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
BAD_REQUEST = 400


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ApiError(Exception):
    """A failure answered as `{success: false, message}` (HTTP 200 unless told otherwise)."""

    def __init__(self, message: str, status_code: int = 200) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


def bad_request(message: str) -> ApiError:
    """Malformed input (not a refused but well-formed request): HTTP 400 in the envelope."""
    return ApiError(message, BAD_REQUEST)


def parse_int(value: Any, name: str, *, minimum: int = INT64_MIN, maximum: int = INT64_MAX) -> int:
    """`value` (a JSON number or a decimal string of ASCII digits) as an int within bounds;
    the one place the API turns client input into integers, so none reaches a protobuf
    field (and a 500) out of range."""
    if isinstance(value, bool):
        raise bad_request(f"{name} must be an integer")
    if isinstance(value, str):
        text = value.strip()
        parsed = ascii_int(text, max_digits=24, signed=True)
        if parsed is None:
            raise bad_request(f"{name} must be an integer")
        number = parsed
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        raise bad_request(f"{name} must be an integer")
    if not minimum <= number <= maximum:
        raise bad_request(f"{name} must be between {minimum} and {maximum}")
    return number


def _check_no_nul(value: Any, where: str) -> None:
    """PostgreSQL text cannot hold NUL: refuse it here rather than fail in a backend."""
    if isinstance(value, str):
        if "\x00" in value:
            raise bad_request(f"{where} must not contain NUL characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_no_nul(key, where)
            _check_no_nul(item, where)
    elif isinstance(value, list):
        for item in value:
            _check_no_nul(item, where)


def envelope(data: Any = None, *, success: bool = True, message: str = "") -> dict[str, Any]:
    return {"success": success, "message": message, "data": data}


def ok(data: Any = None, message: str = "") -> JSONResponse:
    return JSONResponse(envelope(data, message=message))


def fail(message: str, status_code: int = 200) -> JSONResponse:
    return JSONResponse(envelope(None, success=False, message=message), status_code=status_code)


_UNAVAILABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def rpc_message(error: grpc.aio.AioRpcError) -> str:
    """The user-facing text of a failed call: the server's message for domain errors."""
    code = error.code()
    RPC_ERRORS.labels(code.name if code else "UNKNOWN").inc()
    if code in _UNAVAILABLE:
        logger.warning("backend unavailable: %s", code.name)
        return "backend service unavailable, please retry"
    if code == grpc.StatusCode.INTERNAL or code == grpc.StatusCode.UNKNOWN:
        logger.error("backend internal error: %s", error.details())
        return "internal error"
    return error.details() or (code.name.lower() if code else "error")


INT64_MAX = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class Call:
    """One API request: the raw request, the process dependencies and the caller (if any)."""

    request: Request
    deps: Deps
    user: accounts_pb2.User

    @property
    def user_id(self) -> int:
        return int(self.user.id)

    @property
    def role(self) -> int:
        return int(self.user.role)

    async def json(self) -> dict[str, Any]:
        body = await self.request.body()
        if not body:
            return {}
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise bad_request("invalid JSON body") from exc
        if not isinstance(parsed, dict):
            raise bad_request("the body must be a JSON object")
        _check_no_nul(parsed, "the body")
        return parsed

    def query_int(self, name: str, default: int = 0, **bounds: int) -> int:
        raw = self.request.query_params.get(name, "")
        if raw.strip() == "":
            return default
        return parse_int(raw, name, **bounds)

    @staticmethod
    def body_int(body: dict[str, Any], name: str, default: int = 0, **bounds: int) -> int:
        value = body.get(name)
        if value is None or value == "":
            return default
        return parse_int(value, name, **bounds)

    def path_int(self, name: str) -> int:
        return parse_int(self.request.path_params[name], name, minimum=0)

    def page(self, size_param: str = "page_size") -> tuple[int, int]:
        """(1-based page, page size); p=0 is page 1 (older clients send 0-based pages)."""
        page = max(self.query_int("p", 1, maximum=MAX_PAGE), 1)
        size = (
            self.query_int(size_param, 0, maximum=MAX_PAGE)
            or self.query_int("size", 0, maximum=MAX_PAGE)
            or DEFAULT_PAGE_SIZE
        )
        return page, min(max(size, 1), MAX_PAGE_SIZE)


Handler = Callable[[Call], Awaitable[Any]]
Endpoint = Callable[[Request], Awaitable[Response]]

_NO_USER = accounts_pb2.User()


def _credentials(request: Request, secret: str) -> accounts_pb2.ResolvePrincipalRequest | None:
    authorization = request.headers.get("authorization", "").strip()
    if authorization:
        token = authorization.removeprefix("Bearer ").removeprefix("bearer ").strip()
        return accounts_pb2.ResolvePrincipalRequest(access_token=token)
    cookie = request.cookies.get(COOKIE_NAME, "")
    session_id = unsign(secret, cookie) if cookie else None
    if session_id:
        return accounts_pb2.ResolvePrincipalRequest(session_id=session_id)
    return None


async def authenticate(request: Request, deps: Deps) -> accounts_pb2.User:
    """The logged-in user, or ApiError(401) when the credentials or Veloera-User are wrong."""
    credential = _credentials(request, deps.settings.session_secret.value)
    if credential is None:
        raise ApiError("Unauthorized: not logged in and no access token provided", 401)
    claimed = request.headers.get(USER_HEADER, "").strip()
    if not claimed:
        raise ApiError("Unauthorized: the Veloera-User header is missing", 401)
    claimed_id = ascii_int(claimed)
    if claimed_id is None:
        raise ApiError("Unauthorized: the Veloera-User header is not a user id", 401)
    credential.claimed_user_id = claimed_id
    try:
        user = await deps.accounts.ResolvePrincipal(credential, timeout=deps.timeout)
    except grpc.aio.AioRpcError as exc:
        if exc.code() in {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}:
            raise ApiError(f"Unauthorized: {exc.details() or 'invalid credentials'}", 401) from exc
        raise
    if user.id != int(claimed):
        raise ApiError("Unauthorized: Veloera-User does not match the logged-in user", 401)
    if user.status == accounts_pb2.USER_STATUS_DISABLED:
        raise ApiError("the user has been disabled")
    return user


def endpoint(min_role: int = ROLE_GUEST) -> Callable[[Handler], Endpoint]:
    """Wraps a handler: authenticates (min_role > 0), checks the role, maps errors to the
    envelope. A handler returns the `data` value, or a Response to send as is."""

    def decorate(handler: Handler) -> Endpoint:
        async def run(request: Request) -> Response:
            deps: Deps = request.app.state.deps
            try:
                _check_no_nul(dict(request.query_params), "the query")
                _check_no_nul(dict(request.path_params), "the path")
                user = await authenticate(request, deps) if min_role > ROLE_GUEST else _NO_USER
                if user.id:
                    request.state.access_fields = {"user_id": user.id}  # for the access log
                if user.role < min_role:
                    raise ApiError("Permission denied: insufficient role")
                result = await handler(Call(request, deps, user))
            except ApiError as exc:
                return fail(exc.message, exc.status_code)
            except grpc.aio.AioRpcError as exc:
                return fail(rpc_message(exc))
            except (ValueError, OverflowError):
                # A value the parsing above let through that a protobuf field cannot hold
                # (an int32 field, say): still the client's input, so a 400, not a 500.
                logger.warning("bad input on %s", request.url.path, exc_info=True)
                return fail("invalid request: a value is out of range", BAD_REQUEST)
            return result if isinstance(result, Response) else ok(result)

        run.__name__ = handler.__name__
        run.__doc__ = handler.__doc__
        return run

    return decorate
