"""Publishing settlements and releases to the durable JetStream stream billing drains.

A publish returns only once JetStream acknowledged the message: a failure (NATS restarting, a
timeout, the stream missing) is retried with backoff for as long as it takes, because a
settlement that is neither acknowledged by billing nor stored in the stream is a served request
nobody pays for. A batch is one message (one publish however many items), with a `Nats-Msg-Id`
so a retry after a lost acknowledgement is stored once; billing is idempotent by request id
anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator

from nats.js import JetStreamContext
from nats.js.errors import NoStreamResponseError
from veloera.billing.v1 import billing_pb2, events_pb2

from services.relay.metrics import SETTLEMENTS_DEFERRED
from services.shared import natsutil, subjects

logger = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 2.0
BACKOFF_START = 0.05
BACKOFF_MAX = 2.0
MSG_ID_HEADER = "Nats-Msg-Id"  # JetStream's de-duplication key


def backoff(start: float) -> Iterator[float]:
    """Delays between retries: `start`, doubling, at most BACKOFF_MAX, for ever."""
    delay = start
    while True:
        yield delay
        delay = min(delay * 2, BACKOFF_MAX)


class Deferrer:
    """Stores batches in the SETTLEMENTS stream, each until acknowledged."""

    def __init__(self, js: JetStreamContext, *, backoff: float = BACKOFF_START) -> None:
        self._js = js
        self._backoff = backoff

    async def store(self, batch: billing_pb2.SettleBatchRequest) -> None:
        """Publish `batch` as one message (settlements, releases and lease returns); returns
        when it is stored."""
        batch_id = uuid.uuid4().hex
        message = events_pb2.DeferredBatch(
            batch=batch, enqueue_time=int(time.time()), batch_id=batch_id
        )
        await self._publish(
            subjects.SETTLE_BATCHES_SUBJECT, message.SerializeToString(), msg_id=batch_id
        )
        SETTLEMENTS_DEFERRED.inc(len(batch.settlements))

    async def _publish(self, subject: str, payload: bytes, *, msg_id: str) -> None:
        for attempt, delay in enumerate(backoff(self._backoff)):
            try:
                await self._js.publish(
                    subject, payload, timeout=PUBLISH_TIMEOUT, headers={MSG_ID_HEADER: msg_id}
                )
                return
            except asyncio.CancelledError:
                raise
            except NoStreamResponseError:
                # NATS came back without the stream (a fresh server): create it again.
                await self._recreate_streams()
            except Exception as exc:  # every failure is retried: dropping would lose money
                if attempt % 20 == 0:
                    logger.warning("publish to %s failed (%s); retrying", subject, exc)
            await asyncio.sleep(delay)

    async def _recreate_streams(self) -> None:
        try:
            await natsutil.ensure_streams(self._js)
        except Exception as exc:  # NATS may still be on its way back; the next try retries
            logger.warning("could not ensure JetStream streams: %s", exc)


async def publish_until_stored(js: JetStreamContext, payload: bytes, request_id: str) -> None:
    """Hand an accepted task (tasks.v1.TaskSubmitted) to the tasks service, retried until
    JetStream stores it; the request id is the de-duplication key."""
    for attempt, delay in enumerate(backoff(BACKOFF_START)):
        try:
            await js.publish(
                subjects.TASK_SUBMITTED_SUBJECT,
                payload,
                timeout=PUBLISH_TIMEOUT,
                headers={MSG_ID_HEADER: f"task:{request_id}"},
            )
            return
        except asyncio.CancelledError:
            logger.error("accepted task not handed over", extra={"request_id": request_id})
            raise
        except Exception as exc:  # every failure is retried: the task was charged
            if attempt % 20 == 0:
                logger.warning("task hand-over failed (%s); retrying", exc)
        await asyncio.sleep(delay)
