"""Billing calls of the relay: Reserve on the request path, Settle/Release in the background.

Settlements and releases are buffered and sent as one SettleBatch call every BATCH_WINDOW
seconds or BATCH_SIZE items. A batch billing has not answered within DURABLE_WITHIN of its oldest
item (slow, unreachable, failing) is also stored in JetStream item by item, retried until
acknowledged, which billing drains (idempotent by request id): a served request is never left
uncharged, even by a relay killed right after the response.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
from nats.js import JetStreamContext
from veloera.billing.v1 import billing_pb2, billing_pb2_grpc

from services.relay.billing import deferral
from services.relay.billing.batch import SettleBatcher
from services.relay.billing.leases import LeaseBook, LeaseConfig
from services.relay.errors import RelayError
from services.relay.metrics import QUOTA_CHARGED
from services.shared.errors import error_code_of

logger = logging.getLogger(__name__)

RESERVE_TIMEOUT = 2.0
BATCH_WINDOW = 0.02  # seconds a settlement may wait for others before its batch is sent
BATCH_SIZE = 64
MAX_PENDING = 8192  # buffered + in flight; beyond it settlements go straight to JetStream
# Seconds after a settlement is queued by which billing has answered for it or JetStream holds
# it: what a relay killed at any moment may lose.
DURABLE_WITHIN = 0.1
UNPRICED_FIX = (
    "; an administrator must give it a price or ratio (ModelPrice / ModelRatio in the console's"
    " pricing settings) or enable self-use mode"
)
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
    if status == grpc.StatusCode.FAILED_PRECONDITION and code == "model_price_error":
        # 403, not 500: SDKs retry a 5xx, and only an administrator can fix this
        return RelayError(403, message + UNPRICED_FIX, code=code)
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
        stub: billing_pb2_grpc.RelayBillingServiceAsyncStub,
        js: JetStreamContext | None,
        *,
        settle_timeout: float,
        hold_ttl_seconds: int,
        batch_window: float = BATCH_WINDOW,
        batch_size: int = BATCH_SIZE,
        max_pending: int = MAX_PENDING,
        leases: LeaseConfig | None = None,
        durable_within: float = DURABLE_WITHIN,
        publish_backoff: float = deferral.BACKOFF_START,
    ) -> None:
        self._stub = stub
        self._deferrer = None if js is None else deferral.Deferrer(js, backoff=publish_backoff)
        self._backoff = publish_backoff
        self._durable_within = durable_within
        self._late: set[asyncio.Future[billing_pb2.SettleBatchResponse | None]] = set()
        self._settle_timeout = settle_timeout
        self._hold_ttl = hold_ttl_seconds
        self._batcher = SettleBatcher(
            self._send,
            overflow=self._defer,
            window=batch_window,
            max_items=batch_size,
            max_pending=max_pending,
        )
        self._leases = (
            None
            if leases is None
            else LeaseBook(stub, give_back=self._batcher.add_return, config=leases)
        )

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
        rate_limit: billing_pb2.RateLimit | None = None,
    ) -> int:
        """Hold the request's worst case (a lease, else Reserve); returns the output tokens the
        hold covers (max_tokens, else the model's output limit; 0 for non-text kinds). A key
        with its own rate limit always reserves: billing counts its requests."""
        limited = rate_limit is not None and rate_limit.period_ms > 0
        if self._leases is not None and estimate is None and not accept_unpriced and not limited:
            try:
                covered = await self._leases.reserve(
                    request_id=request_id,
                    user_id=user_id,
                    token_id=token_id,
                    model=model,
                    group=group,
                    requested_model=requested_model,
                    prompt_tokens=prompt_tokens,
                    max_tokens=max_tokens,
                )
            except grpc.aio.AioRpcError as exc:
                raise reserve_error(exc) from None
            if covered is not None:
                return covered
        request = billing_pb2.ReserveRequest(
            request_id=request_id,
            user_id=user_id,
            token_id=token_id,
            model=model,
            group=group,
            prompt_tokens=prompt_tokens,
            max_tokens=max_tokens,
            requested_model=requested_model,
            upstream_model=model,
            accept_unpriced=accept_unpriced,
            estimate=estimate,
            token_rate_limit=rate_limit if limited else None,
        )
        return int((await self._place(request)).max_output_tokens)

    async def reserve_task(
        self,
        *,
        request_id: str,
        user_id: int,
        token_id: int,
        model: str,
        group: str,
        accept_unpriced: bool,
    ) -> int:
        """Hold one task submit's price (per call: the charge is the hold); returns the amount,
        which the tasks service refunds if the task fails. Always a Reserve, never a lease: the
        amount must be billing's own."""
        request = billing_pb2.ReserveRequest(
            request_id=request_id,
            user_id=user_id,
            token_id=token_id,
            model=model,
            group=group,
            requested_model=model,
            upstream_model=model,
            accept_unpriced=accept_unpriced,
            estimate=billing_pb2.Usage(kind="task"),
        )
        return int((await self._place(request)).reserved)

    async def _place(self, request: billing_pb2.ReserveRequest) -> billing_pb2.ReserveResponse:
        """Reserve, with the hold's time to live; billing's refusal as the client's error."""
        request.ttl_ms = self._hold_ttl * 1000
        try:
            reply: billing_pb2.ReserveResponse = await self._stub.Reserve(
                request, timeout=RESERVE_TIMEOUT
            )
        except grpc.aio.AioRpcError as exc:
            raise reserve_error(exc) from None
        return reply

    def prices_changed(self) -> None:
        if self._leases is not None:
            self._leases.prices_changed()

    def settle_later(self, request: billing_pb2.SettleRequest) -> None:
        if self._leases is not None:
            self._leases.settled(request)  # a leased request carries its lease id
        self._batcher.add(settlement=request)

    def release_later(self, request_id: str, reason: str) -> None:
        if self._leases is not None and self._leases.released(request_id):
            return  # the local hold went back to the lease: nothing to tell billing
        self._batcher.add(release=billing_pb2.ReleaseRequest(request_id=request_id, reason=reason))

    async def drain(self, timeout: float) -> None:
        """Return idle leases, flush buffered settlements and wait for them (on shutdown)."""
        if self._leases is not None:
            self._leases.retire_all()
        await self._batcher.drain(timeout)

    async def _send(self, batch: billing_pb2.SettleBatchRequest, queued_at: float) -> None:
        """SettleBatch, raced against the durability deadline (`durable_within` after the
        oldest item was queued): unanswered by then, or failed, the batch is stored in
        JetStream as well. Billing applies each request id once, whichever copy comes first,
        so the call and the stream may both deliver it."""
        call = asyncio.ensure_future(self._call(batch))
        left = queued_at + self._durable_within - time.monotonic()
        done, _ = await asyncio.wait({call}, timeout=max(left, 0.0))
        if not done:
            self._keep_late(batch, call)
            await self._defer(batch, queued_at)
            return
        reply = call.result()
        if reply is None:
            await self._defer(batch, queued_at)
        else:
            _report(batch, reply)

    async def _call(
        self, batch: billing_pb2.SettleBatchRequest
    ) -> billing_pb2.SettleBatchResponse | None:
        """One SettleBatch call; None when it failed (whatever the reason: the items must
        then go the durable way, billing's consumer terminates the ones that can never apply)."""
        try:
            reply: billing_pb2.SettleBatchResponse = await self._stub.SettleBatch(
                batch, timeout=self._settle_timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in _DEFER_CODES:
                logger.error("billing.SettleBatch failed: %s %s", exc.code().name, exc.details())
            return None
        except Exception:
            logger.exception("settle batch failed; deferring it")
            return None
        return reply

    def _keep_late(
        self,
        batch: billing_pb2.SettleBatchRequest,
        call: asyncio.Future[billing_pb2.SettleBatchResponse | None],
    ) -> None:
        """A call that outlived the deadline keeps running, not cancelled: billing may be
        merely slow, and its work then makes the stream copy a cheap repeat."""
        self._late.add(call)

        def done(finished: asyncio.Future[billing_pb2.SettleBatchResponse | None]) -> None:
            self._late.discard(finished)
            reply = None if finished.cancelled() else finished.result()
            if reply is not None:
                _report(batch, reply)

        call.add_done_callback(done)

    async def _defer(self, batch: billing_pb2.SettleBatchRequest, queued_at: float) -> None:
        """Store the batch in JetStream until acknowledged; without JetStream, call billing
        again until it answers. Either way the items are never dropped."""
        if self._deferrer is not None:
            await self._deferrer.store(batch)
            return
        for delay in deferral.backoff(self._backoff):
            reply = await self._call(batch)
            if reply is not None:
                _report(batch, reply)
                return
            await asyncio.sleep(delay)


def _report(batch: billing_pb2.SettleBatchRequest, reply: billing_pb2.SettleBatchResponse) -> None:
    """Metrics and logs of a SettleBatch answer (a rejected item is billing's final word)."""
    for request, result in zip(batch.settlements, reply.settlements, strict=False):
        if result.HasField("settled"):
            QUOTA_CHARGED.inc(max(result.settled.charged, 0))
        else:
            logger.error(
                "billing settle rejected: %s %s",
                result.error.code,
                result.error.message,
                extra={"request_id": request.request_id},
            )
    for release, outcome in zip(batch.releases, reply.releases, strict=False):
        if outcome.HasField("error") and outcome.error.code != "hold_not_found":
            logger.error(
                "billing release rejected: %s",
                outcome.error.code,
                extra={"request_id": release.request_id},
            )
