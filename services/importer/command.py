"""`veloera import --from SOURCE`: progress bars while it runs, the report when done."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg
from rich.console import Console

from services.importer.announce import announce
from services.importer.report import Bars, Report, progress_bars, render
from services.importer.run import ImportSettings, run_import

ROUTING_VERSION = "SELECT version FROM accounts.routing_state WHERE id = 1"


async def import_command(
    settings: ImportSettings,
    *,
    nats_url: str,
    console: Console,
    nats_passwords: Mapping[str, str] | None = None,
) -> Report:
    """Run the import with progress bars, print the report, tell running services."""
    with progress_bars(console) as progress:
        report = await run_import(settings, bars=Bars(progress))
    render(report, console)
    if not settings.dry_run and report.changed:
        await _tell_services(settings, report, nats_url, console, nats_passwords or {})
    return report


async def _tell_services(
    settings: ImportSettings,
    report: Report,
    nats_url: str,
    console: Console,
    nats_passwords: Mapping[str, str],
) -> None:
    conn = await asyncpg.connect(settings.database_url, timeout=30)
    try:
        version: int = await conn.fetchval(ROUTING_VERSION)
    finally:
        await conn.close()
    if nats_url and await announce(
        nats_url, report, routing_version=version, passwords=nats_passwords
    ):
        console.print("Running services were told to reload keys, channels and options.")
    else:
        console.print(
            "No NATS reachable: services started later load everything; running ones pick"
            " the import up within their refresh intervals."
        )
