"""API-key authentication: key parsing, a short per-key cache of accounts.Authenticate, checks."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from dataclasses import dataclass

import grpc
import orjson
from veloera.accounts.v1 import accounts_pb2, accounts_pb2_grpc

from services.relay.errors import RelayError
from services.shared.numbers import ascii_int

logger = logging.getLogger(__name__)

AUTHENTICATE_TIMEOUT = 2.0
ROLE_ADMIN = accounts_pb2.ROLE_ADMIN
MAX_CHANNEL_DIGITS = 18  # a pinned channel id fits in int64
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ParsedKey:
    key: str
    channel_id: int | None


def parse_key(authorization: str) -> ParsedKey | None:
    """`Bearer sk-<key>[-<channelId>]` → the key and the pinned channel (None if malformed)."""
    value = authorization.strip()
    if value[:6].lower() == "bearer" and (len(value) == 6 or value[6] in " \t"):
        value = value[6:].lstrip()
    if value.startswith("sk-"):
        value = value[3:]
    key, sep, suffix = value.partition("-")
    if not key:
        return None
    if not sep:
        return ParsedKey(key, None)
    channel_id = ascii_int(suffix, max_digits=MAX_CHANNEL_DIGITS)
    return None if channel_id is None else ParsedKey(key, channel_id)


@dataclass(slots=True)
class AuthEntry:
    """One Authenticate answer with its limits pre-parsed (so checks cost no parsing)."""

    token: accounts_pb2.Token
    user: accounts_pb2.User
    group: str
    usable_groups: frozenset[str]
    model_limits: frozenset[str] | None  # None: every model
    allow_ips: frozenset[str]
    allow_networks: tuple[_IPNetwork, ...]
    log_ip: bool = False  # the user opted in to client IPs in their logs
    accept_unpriced: bool = False  # the user accepts unpriced models (default ratio)
    quota_warning_threshold: int = 0  # the user's own threshold; 0: the global option

    @classmethod
    def from_reply(cls, reply: accounts_pb2.AuthenticateResponse) -> AuthEntry:
        token = reply.token
        exact: set[str] = set()
        networks: list[_IPNetwork] = []
        for raw in token.allow_ips:
            item = raw.strip()
            if not item:
                continue
            if "/" in item:
                try:
                    networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    logger.warning("token %d has an invalid allow_ips entry", token.id)
            else:
                exact.add(_normalise_ip(item))
        limits = frozenset(token.model_limits) if token.model_limits_enabled else None
        setting = _user_setting(reply.user.setting)
        return cls(
            log_ip=setting.get("show_ip_in_logs") is True,
            accept_unpriced=setting.get("accept_unset_model_ratio_model") is True,
            quota_warning_threshold=_non_negative_int(setting.get("quota_warning_threshold")),
            token=token,
            user=reply.user,
            group=token.group or reply.user.group,
            usable_groups=frozenset(reply.usable_groups),
            model_limits=limits,
            allow_ips=frozenset(exact),
            allow_networks=tuple(networks),
        )

    @property
    def ip_restricted(self) -> bool:
        return bool(self.allow_ips or self.allow_networks)

    def ip_allowed(self, client_ip: str) -> bool:
        if client_ip in self.allow_ips:
            return True
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            return False
        if str(address) in self.allow_ips:
            return True
        return any(address in network for network in self.allow_networks)


def _user_setting(setting: str) -> dict[str, object]:
    """The user's setting JSON. Client IPs reach the log only when the user turned
    `show_ip_in_logs` on (upstream `model/log.go`)."""
    if not setting:
        return {}
    try:
        parsed = orjson.loads(setting)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _non_negative_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(int(value), 0)


def _normalise_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def invalid_token(message: str = "invalid token") -> RelayError:
    return RelayError(401, message, code="invalid_token")


def check_token(entry: AuthEntry, now: float) -> None:
    """Token and user state, in upstream's order (`middleware/auth.go`); `now` in unix seconds."""
    token = entry.token
    status = token.status
    if status == accounts_pb2.TOKEN_STATUS_EXHAUSTED:
        raise invalid_token("token quota is exhausted")
    if status == accounts_pb2.TOKEN_STATUS_EXPIRED:
        raise invalid_token("token has expired")
    if status != accounts_pb2.TOKEN_STATUS_ENABLED:
        raise invalid_token("token is disabled")
    if 0 < token.expired_time < now:
        raise invalid_token("token has expired")
    user = entry.user
    if user.deleted:
        raise invalid_token()
    if user.status != accounts_pb2.USER_STATUS_ENABLED:
        raise RelayError(403, "user is banned", code="user_banned")


def check_access(
    entry: AuthEntry, *, model: str | None, client_ip: str, pinned: int | None
) -> None:
    """Pinning, IP allow-list, model allow-list and group (upstream `middleware/auth.go`,
    `middleware/distributor.go`).
    """
    if pinned is not None and entry.user.role < ROLE_ADMIN:
        raise RelayError(403, "common users cannot specify a channel", code="access_denied")
    if entry.ip_restricted and not entry.ip_allowed(client_ip):
        raise RelayError(403, "your IP is not in the token's allow-list", code="ip_not_allowed")
    if model is not None and entry.model_limits is not None and model not in entry.model_limits:
        raise RelayError(403, f"this token may not access model {model}", code="model_not_allowed")
    if entry.group not in entry.usable_groups:
        raise RelayError(
            403, f"token group {entry.group} has been disabled", code="group_not_allowed"
        )


_NOT_FOUND = object()  # cached negative answer


class Authenticator:
    """accounts.Authenticate with a bounded per-key cache and one in-flight call per key."""

    def __init__(
        self, stub: accounts_pb2_grpc.RelayAccountsServiceAsyncStub, *, ttl: float, max_size: int
    ) -> None:
        self._stub = stub
        self._ttl = ttl
        self._max_size = max_size
        self._cache: dict[str, AuthEntry | object] = {}
        self._expiry: dict[str, float] = {}
        self._inflight: dict[str, asyncio.Future[AuthEntry | object]] = {}
        self._generation = 0  # bumped by clear(): answers fetched before it are not cached

    def clear(self) -> None:
        self._generation += 1
        self._cache.clear()
        self._expiry.clear()

    async def authenticate(self, key: str) -> AuthEntry:
        cached = self._cache.get(key)
        if cached is not None and self._expiry[key] > time.monotonic():
            return self._unwrap(cached)
        pending = self._inflight.get(key)
        if pending is not None:
            return self._unwrap(await asyncio.shield(pending))
        future: asyncio.Future[AuthEntry | object] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        generation = self._generation
        try:
            result = await self._fetch(key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        else:
            future.set_result(result)
            if generation == self._generation:
                self._store(key, result)
        finally:
            del self._inflight[key]
        return self._unwrap(result)

    @staticmethod
    def _unwrap(value: AuthEntry | object) -> AuthEntry:
        if isinstance(value, AuthEntry):
            return value
        raise invalid_token()

    def _store(self, key: str, value: AuthEntry | object) -> None:
        if len(self._cache) >= self._max_size:
            oldest = next(iter(self._cache))
            del self._cache[oldest]
            del self._expiry[oldest]
        self._cache.pop(key, None)
        self._cache[key] = value
        self._expiry[key] = time.monotonic() + self._ttl

    async def _fetch(self, key: str) -> AuthEntry | object:
        try:
            reply = await self._stub.Authenticate(
                accounts_pb2.AuthenticateRequest(key=key), timeout=AUTHENTICATE_TIMEOUT
            )
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED):
                return _NOT_FOUND
            if code == grpc.StatusCode.PERMISSION_DENIED:
                raise RelayError(403, exc.details() or "forbidden", code="access_denied") from None
            logger.warning("accounts.Authenticate failed: %s", code.name)
            raise RelayError(
                503, "authentication service unavailable", code="auth_unavailable"
            ) from None
        return AuthEntry.from_reply(reply)
