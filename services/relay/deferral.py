"""Publishing settlements and releases to the durable JetStream stream billing drains.

A publish returns only once JetStream acknowledged the message: a failure (NATS restarting, a
timeout, the stream missing) is retried with backoff for as long as it takes, because a
settlement that is neither acknowledged by billing nor stored in the stream is a served request
nobody pays for. Each message carries a `Nats-Msg-Id`, so a retry after a lost acknowledgement
is stored once; billing is idempotent by request id anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
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
    """Stores a batch's items in the SETTLEMENTS stream, each until acknowledged."""

    def __init__(self, js: JetStreamContext, *, backoff: float = BACKOFF_START) -> None:
        self._js = js
        self._backoff = backoff

    async def store(self, batch: billing_pb2.SettleBatchRequest) -> None:
        """Publish every settlement and release of `batch`; returns when all are stored.
        Lease returns are not carried: billing's reaper returns those leases later."""
        now_ms = int(time.time() * 1000)
        jobs = [self._store_settlement(request, now_ms) for request in batch.settlements]
        jobs += [self._store_release(release, now_ms) for release in batch.releases]
        await asyncio.gather(*jobs)

    async def _store_settlement(self, request: billing_pb2.SettleRequest, now_ms: int) -> None:
        message = events_pb2.DeferredSettlement(settle=request, enqueued_at_ms=now_ms)
        await self._publish(
            subjects.SETTLEMENTS_SUBJECT,
            message.SerializeToString(),
            msg_id=f"settle:{request.request_id}",
        )
        SETTLEMENTS_DEFERRED.inc()

    async def _store_release(self, release: billing_pb2.ReleaseRequest, now_ms: int) -> None:
        message = events_pb2.DeferredRelease(release=release, enqueued_at_ms=now_ms)
        await self._publish(
            subjects.RELEASES_SUBJECT,
            message.SerializeToString(),
            msg_id=f"release:{release.request_id}",
        )

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
