"""Tell running services that imported users, keys, channels and options changed.

The relay and web services cache keys, users, routing and options; accounts' change event and
billing's prices-changed subject make them reload at once (they also poll, so an import with no
NATS reachable is picked up within their refresh intervals or at the next start).
"""

from __future__ import annotations

import asyncio
import logging

import nats

from services.accounts import events
from services.importer.report import Report
from services.shared import subjects

logger = logging.getLogger(__name__)
CONNECT_TIMEOUT = 3


async def announce(nats_url: str, report: Report, *, routing_version: int) -> bool:
    """Publish the change events; False when NATS could not be reached."""

    async def quiet(_exc: Exception) -> None:  # one warning below instead of one per attempt
        pass

    try:
        nc = await asyncio.wait_for(
            nats.connect(
                servers=[nats_url],
                name="veloera-import",
                connect_timeout=CONNECT_TIMEOUT,
                max_reconnect_attempts=0,
                allow_reconnect=False,
                error_cb=quiet,
            ),
            CONNECT_TIMEOUT * 2,
        )
    except Exception as exc:
        logger.warning("cannot reach NATS at %s to announce the import: %s", nats_url, exc)
        return False
    try:
        publisher = events.EventPublisher(nc)
        await publisher.changed(events.USER, routing_version=routing_version)
        await publisher.changed(events.TOKEN, routing_version=routing_version)
        await publisher.changed(events.CHANNEL, routing_version=routing_version)
        if report.option_keys:
            await publisher.changed(
                events.OPTION, routing_version=routing_version, option_keys=report.option_keys
            )
        for key in report.pricing_keys:
            await nc.publish(subjects.PRICES_CHANGED, key.encode())
        await nc.flush(timeout=CONNECT_TIMEOUT)
        return True
    finally:
        await nc.close()
