"""Change events published on NATS after a commit, so relays drop caches and reload routing."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from nats.aio.client import Client as NATS
from veloera.accounts.v1 import events_pb2

from services.accounts.metrics import EVENTS_PUBLISHED
from services.shared import subjects

logger = logging.getLogger(__name__)

USER = events_pb2.CHANGE_KIND_USER
TOKEN = events_pb2.CHANGE_KIND_TOKEN
CHANNEL = events_pb2.CHANGE_KIND_CHANNEL
OPTION = events_pb2.CHANGE_KIND_OPTION
JS_TIMEOUT = 2.0


class EventPublisher:
    """Fire-and-forget publisher; a NATS outage is logged, never fails the committed change."""

    def __init__(self, nc: NATS | None) -> None:
        self._nc = nc

    async def changed(
        self,
        kind: events_pb2.ChangeKind.ValueType,
        *,
        ids: Iterable[int] = (),
        routing_version: int = 0,
        option_keys: Iterable[str] = (),
    ) -> None:
        event = events_pb2.ChangeEvent(
            kind=kind,
            ids=list(ids),
            routing_version=routing_version,
            occur_time=int(time.time()),
            option_keys=list(option_keys),
        )
        label = events_pb2.ChangeKind.Name(kind)
        if self._nc is None:
            return
        try:
            await self._nc.publish(subjects.ACCOUNTS_CHANGED, event.SerializeToString())
            EVENTS_PUBLISHED.labels(label, "ok").inc()
        except Exception as exc:  # the change is committed; relays also poll the version
            EVENTS_PUBLISHED.labels(label, "error").inc()
            logger.warning("cannot publish change event %s: %s", label, exc)

    async def channel_state(
        self, *, channel_id: int, key_id: int, channel_name: str, enabled: bool, reason: str
    ) -> None:
        event = events_pb2.ChannelStateEvent(
            channel_id=channel_id,
            key_id=key_id,
            channel_name=channel_name,
            enabled=enabled,
            reason=reason,
            occur_time=int(time.time()),
        )
        if self._nc is None:
            return
        try:  # JetStream (stream EVENTS): stored until notifications consume it
            await self._nc.jetstream().publish(
                subjects.CHANNEL_STATE_SUBJECT, event.SerializeToString(), timeout=JS_TIMEOUT
            )
        except Exception as exc:
            logger.warning("cannot publish channel state event: %s", exc)
