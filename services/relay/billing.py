"""Billing calls of the relay: Reserve on the request path, Settle/Release in the background.

A Settle or Release that cannot reach billing is published to JetStream, which billing drains
(idempotent by request id), so a served request is never left uncharged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

import grpc
from nats.js import JetStreamContext
from veloera.billing.v1 import billing_pb2, billing_pb2_grpc, events_pb2

from services.relay.errors import RelayError
from services.relay.metrics import QUOTA_CHARGED, SETTLEMENTS_DEFERRED
from services.shared import subjects
from services.shared.errors import error_code_of

logger = logging.getLogger(__name__)

RESERVE_TIMEOUT = 2.0
_DEFER_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def reserve_error(exc: grpc.aio.AioRpcError) -> RelayError:
    status = exc.code()
    code = error_code_of(exc)
    message = exc.details() or "billing error"
    if status == grpc.StatusCode.RESOURCE_EXHAUSTED and code == "rate_limited":
        return RelayError(429, message, type_="veloera_error", code=code)
    if status == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return RelayError(
            403, message, type_="veloera_error", code=code or "insufficient_user_quota"
        )
    if status == grpc.StatusCode.FAILED_PRECONDITION:
        http = 403 if code == "group_not_priced" else 500
        return RelayError(http, message, code=code or "model_price_error")
    if status == grpc.StatusCode.INVALID_ARGUMENT:
        return RelayError(400, message, type_="invalid_request_error", code=code or None)
    if status == grpc.StatusCode.PERMISSION_DENIED:
        return RelayError(403, message, code=code or "access_denied")
    if status in _DEFER_CODES:
        return RelayError(503, "billing service unavailable", code="billing_unavailable")
    logger.error("billing.Reserve failed: %s", status.name)
    return RelayError(500, "billing error", code="billing_error")


class Biller:
    """Holds the billing stub, the JetStream fallback and the background settle tasks."""

    def __init__(
        self,
        stub: billing_pb2_grpc.BillingServiceAsyncStub,
        js: JetStreamContext | None,
        *,
        settle_timeout: float,
        hold_ttl_seconds: int,
    ) -> None:
        self._stub = stub
        self._js = js
        self._settle_timeout = settle_timeout
        self._hold_ttl = hold_ttl_seconds
        self._tasks: set[asyncio.Task[None]] = set()

    async def reserve(
        self,
        *,
        request_id: str,
        user_id: int,
        token_id: int,
        model: str,
        group: str,
        prompt_tokens: int,
        max_tokens: int,
        requested_model: str = "",
        accept_unpriced: bool = False,
        estimate: billing_pb2.Usage | None = None,
        rate_limit: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        period, limit, success = rate_limit
        request = billing_pb2.ReserveRequest(
            request_id=request_id,
            user_id=user_id,
            token_id=token_id,
            model=model,
            group=group,
            prompt_tokens=prompt_tokens,
            max_tokens=max_tokens,
            ttl_seconds=self._hold_ttl,
            requested_model=requested_model,
            upstream_model=model,
            accept_unpriced=accept_unpriced,
            estimate=estimate,
            token_rate_limit_period=period,
            token_rate_limit_count=limit,
            token_rate_limit_success=success,
        )
        try:
            await self._stub.Reserve(request, timeout=RESERVE_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            raise reserve_error(exc) from None

    def settle_later(self, request: billing_pb2.SettleRequest) -> None:
        self._spawn(self._settle(request))

    def release_later(self, request_id: str, reason: str) -> None:
        self._spawn(self._release(billing_pb2.ReleaseRequest(request_id=request_id, reason=reason)))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float) -> None:
        """Wait for pending settlements (on shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def _settle(self, request: billing_pb2.SettleRequest) -> None:
        try:
            reply = await self._stub.Settle(request, timeout=self._settle_timeout)
            QUOTA_CHARGED.inc(max(reply.charged, 0))
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _DEFER_CODES:
                message = events_pb2.DeferredSettlement(
                    settle=request, enqueued_at_ms=int(time.time() * 1000)
                )
                await self._publish(subjects.SETTLEMENTS_SUBJECT, message.SerializeToString())
                SETTLEMENTS_DEFERRED.inc()
            else:
                logger.error(
                    "billing.Settle failed: %s %s",
                    exc.code().name,
                    exc.details(),
                    extra={"request_id": request.request_id},
                )
        except Exception:
            logger.exception("settle failed", extra={"request_id": request.request_id})

    async def _release(self, request: billing_pb2.ReleaseRequest) -> None:
        try:
            await self._stub.Release(request, timeout=self._settle_timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _DEFER_CODES:
                message = events_pb2.DeferredRelease(
                    release=request, enqueued_at_ms=int(time.time() * 1000)
                )
                await self._publish(subjects.RELEASES_SUBJECT, message.SerializeToString())
            elif error_code_of(exc) != "hold_not_found":
                logger.error(
                    "billing.Release failed: %s",
                    exc.code().name,
                    extra={"request_id": request.request_id},
                )
        except Exception:
            logger.exception("release failed", extra={"request_id": request.request_id})

    async def _publish(self, subject: str, payload: bytes) -> None:
        if self._js is None:
            logger.error("cannot defer %s: no JetStream connection", subject)
            return
        try:
            await self._js.publish(subject, payload, timeout=self._settle_timeout)
        except Exception:
            logger.exception("could not publish to %s", subject)
