"""Who may call which internal RPC: service credentials and the one caller -> RPC table.

Every gRPC call on the internal plane carries `x-veloera-caller: <caller>:<token>` metadata.
The token is a per-deployment random secret per calling service (`INTERNAL_TOKEN_<CALLER>`);
accounts and billing know the token of every caller and refuse a call whose credential is
missing or wrong (UNAUTHENTICATED) or whose caller may not call that RPC (PERMISSION_DENIED).
The caller's identity is the credential's; an `actor_id` in a request is the end user the web
service verified from its session, and only callers trusted to act for users (web, the admin
tool) may call the RPCs that carry one. The health service stays open for probes.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from veloera.accounts.v1 import accounts_pb2
from veloera.billing.v1 import billing_pb2

from services.shared.config import Env, Secret

logger = logging.getLogger(__name__)

METADATA_KEY = "x-veloera-caller"
MIN_TOKEN_CHARS = 32

RELAY = "relay"
WEB = "web"
TASKS = "tasks"
# Operator tools (ledger checks, the test suite): every RPC. `veloera up` does not create it;
# set INTERNAL_TOKEN_ADMIN on accounts/billing only while such a tool needs it.
ADMIN = "admin"


def _methods(service: Any) -> frozenset[str]:
    return frozenset(f"/{service.full_name}/{method.name}" for method in service.methods)


def _named(service: Any, *names: str) -> frozenset[str]:
    paths = frozenset(f"/{service.full_name}/{name}" for name in names)
    unknown = paths - _methods(service)
    if unknown:
        raise RuntimeError(f"permission table names unknown RPCs: {sorted(unknown)}")
    return paths


_ACCOUNTS = accounts_pb2.DESCRIPTOR.services_by_name["AccountsService"]
_RELAY_ACCOUNTS = accounts_pb2.DESCRIPTOR.services_by_name["RelayAccountsService"]
_BILLING = billing_pb2.DESCRIPTOR.services_by_name["BillingService"]
_RELAY_BILLING = billing_pb2.DESCRIPTOR.services_by_name["RelayBillingService"]
ALL_RPCS = (
    _methods(_ACCOUNTS) | _methods(_RELAY_ACCOUNTS) | _methods(_BILLING) | _methods(_RELAY_BILLING)
)

# The relay: its own services (API keys, routing, channel results and probes; holds,
# settlements, leases, its error log rows) and two reads of the console's billing service for
# the OpenAI-style billing dashboard (/v1/dashboard/...). Nothing that acts for an admin,
# grants quota or reads secret options.
RELAY_RPCS = (
    _methods(_RELAY_ACCOUNTS)
    | _methods(_RELAY_BILLING)
    | _named(_BILLING, "GetPricingOptions", "GetTokenBudgets")
)

# The console acts for signed-in users and admins (every `actor_id` it sends comes from a session
# it verified): the console's services, but not the ledger check; never the relays' services
# (money on the request path, the routing snapshot, decrypted channel keys, probe records).
WEB_RPCS = _methods(_ACCOUNTS) | (_methods(_BILLING) - _named(_BILLING, "CheckLedger"))

# The tasks service's scheduled channel tests and balance queries: list the channels (keys
# masked); the relays make the probes and record them.
TASKS_RPCS = _named(_ACCOUNTS, "ListChannels")

PERMISSIONS: dict[str, frozenset[str]] = {
    RELAY: RELAY_RPCS,
    WEB: WEB_RPCS,
    TASKS: TASKS_RPCS,
    ADMIN: ALL_RPCS,
}
# Callers a server must know (it refuses to start without their tokens); the others are optional.
REQUIRED_CALLERS = (RELAY, WEB, TASKS)


def token_variable(caller: str) -> str:
    return f"INTERNAL_TOKEN_{caller.upper()}"


@dataclass(frozen=True, slots=True)
class Credential:
    """What a calling service presents: its name and its token, as ready-made call metadata."""

    caller: str
    token: Secret

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return ((METADATA_KEY, f"{self.caller}:{self.token.value}"),)


def _check_token(env: Env, name: str, token: Secret) -> None:
    if token.value and len(token.value) < MIN_TOKEN_CHARS:
        env.fail(f"{name} must be at least {MIN_TOKEN_CHARS} characters")


def load_credential(env: Env, caller: str) -> Credential:
    """The calling service's own credential (INTERNAL_TOKEN_<CALLER>, required)."""
    name = token_variable(caller)
    token = env.secret(name)
    _check_token(env, name, token)
    return Credential(caller, token)


def load_caller_tokens(env: Env) -> dict[str, Secret]:
    """The tokens a server checks: every caller in PERMISSIONS whose variable is set; the
    relay's and web's are required."""
    tokens: dict[str, Secret] = {}
    for caller in PERMISSIONS:
        name = token_variable(caller)
        token = env.secret(name) if caller in REQUIRED_CALLERS else env.secret(name, "")
        _check_token(env, name, token)
        if token.value:
            tokens[caller] = token
    return tokens


async def _refuse_unauthenticated(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid service credential")


async def _refuse_permission(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, "this service may not call this RPC")


_UNAUTHENTICATED: grpc.RpcMethodHandler[Any, Any] = grpc.unary_unary_rpc_method_handler(
    _refuse_unauthenticated
)
_PERMISSION_DENIED: grpc.RpcMethodHandler[Any, Any] = grpc.unary_unary_rpc_method_handler(
    _refuse_permission
)
_OPEN_PREFIX = "/grpc.health.v1.Health/"


class CallerAuthInterceptor(grpc.aio.ServerInterceptor):
    """Checks the caller's credential (constant-time) and its permission for the method.

    On the request path: one pass over the call's few metadata entries, one dict lookup, one
    compare_digest and one set lookup; refusals reuse two prebuilt handlers."""

    def __init__(
        self,
        tokens: Mapping[str, Secret],
        permissions: Mapping[str, frozenset[str]] = PERMISSIONS,
    ) -> None:
        self._tokens = {caller: token.value.encode() for caller, token in tokens.items()}
        self._permissions = permissions

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = handler_call_details.method
        if method.startswith(_OPEN_PREFIX):
            return await continuation(handler_call_details)
        caller = self._authenticate(handler_call_details.invocation_metadata)
        if caller is None:
            logger.warning("refused %s: missing or invalid service credential", method)
            return _UNAUTHENTICATED
        if method not in self._permissions[caller]:
            logger.warning("refused %s: caller %s may not call it", method, caller)
            return _PERMISSION_DENIED
        return await continuation(handler_call_details)

    def _authenticate(self, metadata: Any) -> str | None:
        """The caller whose token the call presents, or None."""
        for key, value in metadata or ():
            if key == METADATA_KEY:
                caller, _, token = str(value).partition(":")
                expected = self._tokens.get(caller)
                if expected is not None and hmac.compare_digest(token.encode(), expected):
                    return caller
                return None
        return None
