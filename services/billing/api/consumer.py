"""Durable JetStream pull consumer of deferred batches (and the single settlements and releases
older relays published): the second way settlements reach billing after the SettleBatch RPC,
applied through the same settle use case; and the refunds of failed async tasks the tasks
service publishes (metering/task_refund.py).

Ack policy: ack after the batch is committed (or was already applied: settlements and releases
are idempotent by request id, so a redelivered or twice-published message charges once; items
of a batch that can never apply are logged); nak with a delay on a transient failure (database
or network); term on an undecodable message or one that can never apply (invalid payload).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from veloera.billing.v1 import billing_pb2, events_pb2
from veloera.tasks.v1 import tasks_pb2

from services.billing.api import proto
from services.billing.api.settle_batch import apply_batch
from services.billing.context import Billing
from services.billing.metering import settle, task_refund
from services.billing.metrics import CONSUMER_UP, DEFERRED
from services.shared import pull_loop, subjects
from services.shared.errors import DomainError, FailedPrecondition

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
    if msg.subject == subjects.TASK_REFUNDS_SUBJECT:
        refund = tasks_pb2.TaskRefund.FromString(msg.data)
        if not refund.request_id:
            raise DecodeError("task refund without a request id")
        await task_refund.refund_task(billing, refund)
        return "task_refund"
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


_KINDS = {
    subjects.RELEASES_SUBJECT: "release",
    subjects.SETTLE_BATCHES_SUBJECT: "batch",
    subjects.TASK_REFUNDS_SUBJECT: "task_refund",
}


async def handle(billing: Billing, msg: Msg) -> pull_loop.Outcome:
    kind = _KINDS.get(msg.subject, "settle")
    try:
        await _apply(billing, msg)
    except DecodeError:
        logger.error("undecodable message on %s; terminating it", msg.subject)
        DEFERRED.labels(kind, "poison").inc()
        return pull_loop.TERM
    except FailedPrecondition as exc:
        # The hold was released or expired before this arrived: nothing left to apply.
        logger.warning("deferred %s not applicable: %s", kind, exc.message)
        DEFERRED.labels(kind, "stale").inc()
        return pull_loop.ACK
    except DomainError as exc:
        logger.error("deferred %s rejected (%s): %s; terminating it", kind, exc.code, exc.message)
        DEFERRED.labels(kind, "rejected").inc()
        return pull_loop.TERM
    except _TRANSIENT:
        logger.warning("deferred %s failed; will retry", kind, exc_info=True)
        DEFERRED.labels(kind, "retry").inc()
        return pull_loop.Nak(RETRY_DELAY_SECONDS)
    except Exception:  # a bug must not stop the loop; the message stays for a later attempt
        logger.exception("deferred %s failed unexpectedly; will retry", kind)
        DEFERRED.labels(kind, "error").inc()
        return pull_loop.Nak(RETRY_DELAY_SECONDS * 6)
    DEFERRED.labels(kind, "applied").inc()
    return pull_loop.ACK


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

    async def handler(msg: Msg) -> pull_loop.Outcome:
        return await handle(billing, msg)

    consumer = pull_loop.Consumer(
        stream=subjects.SETTLEMENTS_STREAM,
        durable=subjects.SETTLEMENTS_DURABLE,
        batch=batch,
        fetch_timeout=FETCH_TIMEOUT_SECONDS,
        ack_wait=ACK_WAIT_SECONDS,
        retry_delay=RETRY_DELAY_SECONDS,
    )
    await pull_loop.run(js, consumer, handler, up=CONSUMER_UP)
