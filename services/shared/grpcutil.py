"""gRPC helpers: a server with the caller-auth and domain-error interceptors and the health
service, and channels that present this service's credential."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Self

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from nats.aio.client import Client as NATS
from prometheus_client import Counter, Histogram

from services.shared.config import Secret
from services.shared.errors import ERROR_CODE_KEY, DomainError
from services.shared.internal_auth import CallerAuthInterceptor, Credential

logger = logging.getLogger(__name__)

RPC_SECONDS = Histogram(
    "veloera_grpc_server_handling_seconds",
    "Time spent handling a gRPC call",
    ["service", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
RPC_TOTAL = Counter(
    "veloera_grpc_server_handled_total", "gRPC calls handled", ["service", "method", "code"]
)

_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


class DomainErrorInterceptor(grpc.aio.ServerInterceptor):
    """Maps DomainError to its status code (code string in trailing metadata), counts calls,
    and turns unexpected exceptions into INTERNAL without leaking their text.

    The wrapped handler is built once per method and reused: this runs on every call of the
    request path, so it allocates nothing per call beyond what gRPC itself does."""

    def __init__(self) -> None:
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method_path: str = handler_call_details.method
        cached = self._wrapped.get(method_path)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        wrapped = _wrap_unary(method_path, handler)
        self._wrapped[method_path] = wrapped
        return wrapped


def _wrap_unary(
    method_path: str, handler: grpc.RpcMethodHandler[Any, Any]
) -> grpc.RpcMethodHandler[Any, Any]:
    service_name, _, method = method_path.rpartition("/")
    service_name = service_name.rsplit(".", 1)[-1]
    inner = handler.unary_unary
    seconds = RPC_SECONDS.labels(service_name, method)
    ok_total = RPC_TOTAL.labels(service_name, method, "OK")

    async def wrapper(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started = time.perf_counter()
        code = "OK"
        try:
            return await inner(request, context)  # type: ignore[misc,arg-type]
        except DomainError as exc:
            code = exc.status.name
            context.set_trailing_metadata(((ERROR_CODE_KEY, exc.code),))
            await context.abort(exc.status, exc.message)
        except grpc.aio.AbortError:
            code = "ABORTED_BY_HANDLER"
            raise
        except Exception:
            code = "INTERNAL"
            logger.exception("unhandled error in %s", method_path)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        finally:
            seconds.observe(time.perf_counter() - started)
            if code == "OK":
                ok_total.inc()
            else:
                RPC_TOTAL.labels(service_name, method, code).inc()

    return grpc.unary_unary_rpc_method_handler(
        wrapper,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def build_grpc_server(
    port: int,
    *,
    host: str = "127.0.0.1",
    service_names: list[str],
    caller_tokens: Mapping[str, Secret],
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """A grpc.aio server bound to host:port with the interceptors and the standard health
    service; `service_names` are marked SERVING once the caller starts the server. Only callers
    in `caller_tokens` presenting their token get through (see internal_auth.PERMISSIONS)."""
    interceptors = [CallerAuthInterceptor(caller_tokens), DomainErrorInterceptor()]
    server = grpc.aio.server(interceptors=interceptors, options=_CHANNEL_OPTIONS)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise RuntimeError(f"cannot bind gRPC port {host}:{port}")
    return server, health_servicer


async def mark_serving(health_servicer: health.aio.HealthServicer, names: list[str]) -> None:
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)


async def mark_not_serving(health_servicer: health.aio.HealthServicer, names: list[str]) -> None:
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)


Probe = Callable[[], Awaitable[bool]]
PROBE_TIMEOUT_SECONDS = 2.0


async def follow_dependencies(
    health_servicer: health.aio.HealthServicer,
    names: list[str],
    probes: Mapping[str, Probe],
    *,
    interval: float = 2.0,
    failures_before_not_serving: int = 2,
) -> None:
    """Keep the health status true to the dependencies: NOT_SERVING while a probe keeps
    failing or hanging (PostgreSQL down, NATS away; one slow round on a busy host is not an
    outage), SERVING again as soon as they all answer, so the web service's /readyz and
    Kubernetes' gRPC probes see an outage without anyone restarting the service. Runs until
    cancelled (at shutdown)."""
    serving, failed_rounds = True, 0
    while True:
        await asyncio.sleep(interval)
        failing = [name for name, probe in probes.items() if not await _answers(probe)]
        failed_rounds = failed_rounds + 1 if failing else 0
        if serving and failed_rounds >= failures_before_not_serving:
            logger.warning("not serving: waiting for %s", ", ".join(failing))
            await mark_not_serving(health_servicer, names)
            serving = False
        elif not serving and not failing:
            logger.info("serving again: dependencies answer")
            await mark_serving(health_servicer, names)
            serving = True


async def _answers(probe: Probe) -> bool:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            return await probe()
    except Exception:
        return False


def pool_probe(pool: asyncpg.Pool) -> Probe:
    """PostgreSQL answers a query through the service's own pool."""

    async def probe() -> bool:
        return bool(await pool.fetchval("SELECT 1") == 1)

    return probe


def nats_probe(nc: NATS) -> Probe:
    """The NATS connection is up (the client reconnects by itself)."""

    async def probe() -> bool:
        return bool(nc.is_connected)

    return probe


def open_channel(address: str, credential: Credential) -> grpc.aio.Channel:
    """One channel per peer per process; opened in the lifespan, closed on shutdown. Every
    unary call on it presents `credential`."""
    inner = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
    return CredentialChannel(inner, credential.metadata)


class _CredentialUnaryUnary(grpc.aio.UnaryUnaryMultiCallable[Any, Any]):
    """Adds the credential metadata to each call (a client interceptor would do the same at
    the cost of an extra asyncio task per call on the relay's request path)."""

    def __init__(
        self,
        inner: grpc.aio.UnaryUnaryMultiCallable[Any, Any],
        metadata: tuple[tuple[str, str], ...],
    ) -> None:
        self._inner = inner
        self._metadata = metadata

    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        return self._inner(
            request,
            timeout=timeout,
            metadata=self._metadata if metadata is None else (*metadata, *self._metadata),
            credentials=credentials,
            wait_for_ready=wait_for_ready,
            compression=compression,
        )


class CredentialChannel(grpc.aio.Channel):
    """A channel whose unary calls carry this service's credential; everything else is the
    wrapped channel's (the internal plane has no streaming RPC)."""

    def __init__(self, inner: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]) -> None:
        self._inner = inner
        self._metadata = metadata

    def unary_unary(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        # Generated stubs pass _registered_method (not in the typeshed signature).
        inner = self._inner.unary_unary(  # type: ignore[call-arg]
            method, request_serializer, response_deserializer, _registered_method
        )
        return _CredentialUnaryUnary(inner, self._metadata)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._inner.unary_stream(*args, **kwargs)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return self._inner.stream_unary(*args, **kwargs)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._inner.stream_stream(*args, **kwargs)

    async def close(self, grace: float | None = None) -> None:
        await self._inner.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._inner.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._inner.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._inner.channel_ready()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self._inner.close(None)


async def wait_serving(address: str, timeout: float = 30.0) -> None:
    """Block until the peer's health service answers SERVING (used by tests and `veloera up`)."""
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"gRPC service at {address} not serving after {timeout}s")
            await asyncio.sleep(0.1)
