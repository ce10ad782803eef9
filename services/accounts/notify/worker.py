"""The notification worker: a durable JetStream pull consumer over the notification subjects of
the EVENTS stream, run inside every accounts replica (the consumer shares the work among them).

Per message: decode the event, find its recipients, and for each one claim a slot under the
limit (limits.py) and deliver. The message is acked once every recipient is delivered, limited
or given up; nak'ed with an exponential delay while a delivery may still succeed (a failing
webhook or SMTP server), and termed after `max_attempts` deliveries. A fetched batch is handled
concurrently, so one slow or failing webhook never holds the others up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import aiohttp
import asyncpg
import nats.errors
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError

from services.accounts import option_rules, options_repo
from services.accounts.metrics import NOTIFICATIONS
from services.accounts.notify import delivery, limits, messages, recipients
from services.shared import subjects
from services.shared.crypto import SecretBox

logger = logging.getLogger(__name__)

_ACK_WAIT_SECONDS = 120.0
_FETCH_TIMEOUT_SECONDS = 5.0
_FETCH_BATCH = 16
_OUTAGE_PAUSE_SECONDS = 2.0
_MAX_RETRY_DELAY_SECONDS = 600.0
_PURGE_EVERY_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    limit_count: int = 2  # NOTIFY_LIMIT_COUNT
    limit_minutes: int = 10  # NOTIFICATION_LIMIT_DURATION_MINUTE
    webhook_timeout: float = 5.0  # NOTIFY_WEBHOOK_TIMEOUT
    smtp_timeout: float = 10.0  # ACCOUNTS_SMTP_TIMEOUT
    max_attempts: int = 5  # NOTIFY_MAX_ATTEMPTS
    retry_seconds: float = 10.0  # NOTIFY_RETRY_SECONDS: the first retry's delay, then doubled
    allow_private: bool = False  # WEBHOOK_PRIVATE_ADDRESSES

    def retry_delay(self, attempt: int) -> float:
        """The pause before attempt `attempt + 1` (exponential, capped at ten minutes)."""
        return float(min(self.retry_seconds * 2 ** max(attempt - 1, 0), _MAX_RETRY_DELAY_SECONDS))


@dataclass(frozen=True, slots=True)
class Worker:
    pool: asyncpg.Pool
    box: SecretBox
    session: aiohttp.ClientSession
    config: NotifyConfig

    async def handle(self, msg: Msg) -> None:
        """Deliver one event to its recipients and ack, nak or term it; never raises."""
        attempt = msg.metadata.num_delivered or 1
        try:
            retry = await self._deliver(msg, attempt)
        except (DecodeError, ValueError):
            logger.error("undecodable notification event on %s; terminating it", msg.subject)
            NOTIFICATIONS.labels("poison").inc()
            await msg.term()
            return
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            logger.warning("notification event not handled; will retry", exc_info=True)
            retry = True
        if not retry:
            await msg.ack()
        elif attempt >= self.config.max_attempts:
            logger.warning("notification given up after %d attempts", attempt)
            await msg.term()
        else:
            await msg.nak(delay=self.config.retry_delay(attempt))

    async def _deliver(self, msg: Msg, attempt: int) -> bool:
        """Deliver to every recipient still pending; True when one of them should be retried."""
        async with self.pool.acquire() as conn:
            options = option_rules.merged(await options_repo.load_options(conn, self.box))
            event = messages.decode(
                msg.subject, msg.data, server_address=options.get("ServerAddress", "")
            )
            if event is None:
                return False
            targets = await recipients.for_event(conn, event.user_id)
        last = attempt >= self.config.max_attempts
        # Concurrently: many admins with slow mail servers must not outlast the ack wait.
        retries = await asyncio.gather(
            *(self._one(msg, event.notification, target, options, last=last) for target in targets)
        )
        return any(retries)

    async def _one(
        self,
        msg: Msg,
        notification: messages.Notification,
        target: recipients.Recipient,
        options: dict[str, str],
        *,
        last: bool,
    ) -> bool:
        seq = msg.metadata.sequence.stream if msg.metadata.sequence else 0
        async with self.pool.acquire() as conn:
            outcome = await limits.claim(
                conn,
                event_seq=seq,
                user_id=target.user_id,
                kind=notification.type,
                limit=self.config.limit_count,
                minutes=self.config.limit_minutes,
            )
        if outcome != limits.PENDING:
            if outcome == limits.LIMITED:
                NOTIFICATIONS.labels("limited").inc()
            return False
        try:
            await delivery.deliver(
                self.session,
                target,
                notification,
                options,
                webhook_timeout=self.config.webhook_timeout,
                smtp_timeout=self.config.smtp_timeout,
                allow_private=self.config.allow_private,
            )
        except delivery.DeliveryFailed as exc:
            retry = exc.retry and not last
            logger.warning(
                "%s notification for user %d not delivered by %s: %s (%s)",
                notification.type,
                target.user_id,
                target.channel,
                exc,
                "will retry" if retry else "given up",
            )
            if retry:
                NOTIFICATIONS.labels("retry").inc()
                return True
            await self._finish(seq, target, limits.FAILED)
            NOTIFICATIONS.labels("failed").inc()
            return False
        await self._finish(seq, target, limits.DELIVERED)
        NOTIFICATIONS.labels("delivered").inc()
        return False

    async def _finish(self, seq: int, target: recipients.Recipient, outcome: str) -> None:
        async with self.pool.acquire() as conn:
            await limits.finish(conn, event_seq=seq, user_id=target.user_id, outcome=outcome)


async def subscribe(
    js: JetStreamContext, config: NotifyConfig
) -> JetStreamContext.PullSubscription:
    """Create (or keep) the durable consumer and bind to it. New consumers start at new
    events: a first deployment does not replay the day of history the stream keeps."""
    consumer = ConsumerConfig(
        name=subjects.NOTIFY_DURABLE,
        durable_name=subjects.NOTIFY_DURABLE,
        filter_subjects=list(subjects.NOTIFY_SUBJECTS),
        deliver_policy=DeliverPolicy.NEW,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=_ACK_WAIT_SECONDS,
        max_deliver=config.max_attempts + 1,  # a backstop: the worker terms at max_attempts
    )
    try:
        await js.add_consumer(subjects.EVENTS_STREAM, consumer)
    except BadRequestError:  # exists with another configuration (an older release): keep it
        logger.warning("notification consumer exists with another configuration; using it")
    return await js.pull_subscribe_bind(
        durable=subjects.NOTIFY_DURABLE, stream=subjects.EVENTS_STREAM
    )


async def pull_loop(nc: NATS, worker: Worker) -> None:
    """Fetch and handle batches until cancelled; outlives idle fetches and NATS outages."""
    js = nc.jetstream()
    while True:
        try:
            subscription = await subscribe(js, worker.config)
            break
        except (nats.errors.Error, TimeoutError):
            logger.warning("notification consumer not ready; retrying", exc_info=True)
            await asyncio.sleep(_OUTAGE_PAUSE_SECONDS)
    purged_at = -_PURGE_EVERY_SECONDS
    try:
        while True:
            try:
                batch = await subscription.fetch(_FETCH_BATCH, timeout=_FETCH_TIMEOUT_SECONDS)
            except (TimeoutError, nats.errors.TimeoutError):
                purged_at = await _purge_when_due(worker, purged_at)  # idle: a good moment
                continue
            except nats.errors.Error:
                logger.warning("notification fetch failed; retrying", exc_info=True)
                await asyncio.sleep(_OUTAGE_PAUSE_SECONDS)
                continue
            await asyncio.gather(*(_handle(worker, msg) for msg in batch))
    finally:
        with contextlib.suppress(nats.errors.Error):
            await subscription.unsubscribe()


async def _purge_when_due(worker: Worker, last: float) -> float:
    """At most once per _PURGE_EVERY_SECONDS per replica, drop old outcome rows; returns when
    the last purge ran."""
    if time.monotonic() - last < _PURGE_EVERY_SECONDS:
        return last
    try:
        async with worker.pool.acquire() as conn:
            await limits.purge(conn)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        logger.warning("old notification outcomes not purged; will try later")
    return time.monotonic()


async def _handle(worker: Worker, msg: Msg) -> None:
    try:
        await worker.handle(msg)
    except nats.errors.Error:
        # The ack did not reach NATS: the event is redelivered after ack_wait, and recipients
        # already reached are not reached again (limits.claim remembers them).
        logger.warning("notification event not acknowledged; it will be redelivered")
    except Exception:  # one bad event must not stop the loop
        logger.exception("notification event failed")
