"""Durable JetStream pull consumer of deferred batches (and the single settlements and releases
older relays published): the second way settlements reach billing after the SettleBatch RPC,
applied through the same settle use case.

Ack policy: ack after the batch is committed (or was already applied: settlements and releases
are idempotent by request id, so a redelivered or twice-published message charges once; items
of a batch that can never apply are logged); nak with a delay on a transient failure (database
or network); term on an undecodable message or one that can never apply (invalid payload).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import nats.errors
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from veloera.billing.v1 import billing_pb2, events_pb2

from services.billing.api import proto
from services.billing.api.settle_batch import apply_batch
from services.billing.context import Billing
from services.billing.metering import settle
from services.billing.metrics import CONSUMER_UP, DEFERRED
from services.shared import subjects
from services.shared.errors import DomainError, FailedPrecondition
from services.shared.metrics import observe_consumed, observe_idle

logger = logging.getLogger(__name__)

ACK_WAIT_SECONDS = 60.0
RETRY_DELAY_SECONDS = 5.0
FETCH_TIMEOUT_SECONDS = 5.0
_TRANSIENT = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def _apply(billing: Billing, msg: Msg) -> str:
    """Apply one message; returns its kind. Raises DecodeError for poison."""
    if msg.subject == subjects.SETTLE_BATCHES_SUBJECT:
        deferred = events_pb2.DeferredBatch.FromString(msg.data)
        _log_rejected(deferred.batch, await apply_batch(billing, deferred.batch))
        return "batch"
    if msg.subject == subjects.RELEASES_SUBJECT:
        release = events_pb2.DeferredRelease.FromString(msg.data).release
        if not release.request_id:
            raise DecodeError("deferred release without a request id")
        await settle.release(
            billing, request_id=release.request_id, reason=release.reason or "deferred"
        )
        return "release"
    deferred_settle = events_pb2.DeferredSettlement.FromString(msg.data).settle
    if not deferred_settle.request_id:
        raise DecodeError("deferred settlement without a request id")
    await settle.settle_one(billing, proto.settle_input(deferred_settle))
    return "settle"


def _log_rejected(
    request: billing_pb2.SettleBatchRequest, reply: billing_pb2.SettleBatchResponse
) -> None:
    """Items of a deferred batch that can never apply (unknown or released holds): logged, the
    message is still acknowledged (the rest of the batch was applied)."""
    for item, result in zip(request.settlements, reply.settlements, strict=True):
        if result.HasField("error"):
            logger.warning(
                "deferred settlement not applicable: %s",
                result.error.code,
                extra={"request_id": item.request_id},
            )


_KINDS = {subjects.RELEASES_SUBJECT: "release", subjects.SETTLE_BATCHES_SUBJECT: "batch"}


async def handle(billing: Billing, msg: Msg) -> None:
    kind = _KINDS.get(msg.subject, "settle")
    try:
        await _apply(billing, msg)
    except DecodeError:
        logger.error("undecodable message on %s; terminating it", msg.subject)
        DEFERRED.labels(kind, "poison").inc()
        await msg.term()
        return
    except FailedPrecondition as exc:
        # The hold was released or expired before this arrived: nothing left to apply.
        logger.warning("deferred %s not applicable: %s", kind, exc.message)
        DEFERRED.labels(kind, "stale").inc()
        await msg.ack()
        return
    except DomainError as exc:
        logger.error("deferred %s rejected (%s): %s; terminating it", kind, exc.code, exc.message)
        DEFERRED.labels(kind, "rejected").inc()
        await msg.term()
        return
    except _TRANSIENT:
        logger.warning("deferred %s failed; will retry", kind, exc_info=True)
        DEFERRED.labels(kind, "retry").inc()
        await msg.nak(delay=RETRY_DELAY_SECONDS)
        return
    except Exception:  # a bug must not stop the loop; the message stays for a later attempt
        logger.exception("deferred %s failed unexpectedly; will retry", kind)
        DEFERRED.labels(kind, "error").inc()
        await msg.nak(delay=RETRY_DELAY_SECONDS * 6)
        return
    await msg.ack()
    DEFERRED.labels(kind, "applied").inc()


async def stream_drained(js: JetStreamContext) -> bool:
    """True when no deferred settlement or release waits in the stream (acknowledged messages
    leave a work-queue stream). The reaper asks first: returning a lease or settling a hold at
    its reserved amount while its settlement waits here would refund or overcharge a served
    request. An unreachable NATS counts as not drained."""
    try:
        info = await js.stream_info(subjects.SETTLEMENTS_STREAM)
    except Exception as exc:  # any failure: do not reap on a guess
        logger.warning("settlement stream state unknown (%s); reaping postponed", exc)
        return False
    waiting = info.state.messages
    if waiting:
        logger.info("%d deferred settlements not applied yet; reaping postponed", waiting)
    return waiting == 0


async def run_consumer(billing: Billing, js: JetStreamContext, *, batch: int) -> None:
    """Pull loop on the durable consumer shared by every billing replica; cancel to stop."""
    await js.add_consumer(
        subjects.SETTLEMENTS_STREAM,
        config=ConsumerConfig(
            durable_name=subjects.SETTLEMENTS_DURABLE,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT_SECONDS,
        ),
    )
    subscription = await js.pull_subscribe_bind(
        durable=subjects.SETTLEMENTS_DURABLE, stream=subjects.SETTLEMENTS_STREAM
    )
    CONSUMER_UP.set(1)
    try:
        while True:
            try:
                messages = await subscription.fetch(batch, timeout=FETCH_TIMEOUT_SECONDS)
            except (TimeoutError, nats.errors.TimeoutError):
                # An empty fetch means idle. nats-py raises a plain TimeoutError
                # from a batch fetch that got nothing: not catching it killed this loop.
                observe_idle(subjects.SETTLEMENTS_DURABLE)
                continue
            except nats.errors.Error:
                logger.warning("settlement fetch failed", exc_info=True)
                await asyncio.sleep(RETRY_DELAY_SECONDS)
                continue
            for msg in messages:
                observe_consumed(subjects.SETTLEMENTS_DURABLE, msg)
                await handle(billing, msg)
    finally:
        CONSUMER_UP.set(0)
        await subscription.unsubscribe()
