"""Tell running services that imported users, keys, channels and options changed.

The relay and web services cache keys, users, routing and options; accounts' change event and
billing's prices-changed subject make them reload at once (they also poll, so an import with no
NATS reachable is picked up within their refresh intervals or at the next start).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import nats
from nats.aio.client import Client as NATS

from services.accounts import events
from services.importer.report import Report
from services.shared import nats_auth, subjects

logger = logging.getLogger(__name__)
CONNECT_TIMEOUT = 3


async def announce(
    nats_url: str,
    report: Report,
    *,
    routing_version: int,
    passwords: Mapping[str, str] | None = None,
) -> bool:
    """Publish the change events, each as the service that may publish it (NATS users of
    services.shared.nats_auth: accounts' changes as "accounts", price changes as "billing";
    `passwords` by user, empty when the server has no users); False when NATS could not be
    reached."""
    passwords = passwords or {}
    accounts = await _connect(nats_url, nats_auth.ACCOUNTS, passwords)
    if accounts is None:
        return False
    try:
        publisher = events.EventPublisher(accounts)
        await publisher.changed(events.USER, routing_version=routing_version)
        await publisher.changed(events.TOKEN, routing_version=routing_version)
        await publisher.changed(events.CHANNEL, routing_version=routing_version)
        if report.option_keys:
            await publisher.changed(
                events.OPTION, routing_version=routing_version, option_keys=report.option_keys
            )
        await accounts.flush(timeout=CONNECT_TIMEOUT)
    finally:
        await accounts.close()
    if not report.pricing_keys:
        return True
    billing = await _connect(nats_url, nats_auth.BILLING, passwords)
    if billing is None:
        return False
    try:
        for key in report.pricing_keys:
            await billing.publish(subjects.PRICES_CHANGED, key.encode())
        await billing.flush(timeout=CONNECT_TIMEOUT)
        return True
    finally:
        await billing.close()


async def _connect(nats_url: str, user: str, passwords: Mapping[str, str]) -> NATS | None:
    async def quiet(_exc: Exception) -> None:  # one warning below instead of one per attempt
        pass

    password = passwords.get(user, "")
    credentials = {"user": user, "password": password} if password else {}
    try:
        return await asyncio.wait_for(
            nats.connect(
                servers=[nats_url],
                name="veloera-import",
                connect_timeout=CONNECT_TIMEOUT,
                max_reconnect_attempts=0,
                allow_reconnect=False,
                error_cb=quiet,
                **credentials,
            ),
            CONNECT_TIMEOUT * 2,
        )
    except Exception as exc:
        logger.warning("cannot reach NATS at %s to announce the import: %s", nats_url, exc)
        return None
