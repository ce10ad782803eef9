"""`python -m services.importer` (what `veloera import` runs): move a new-api, one-api or
Veloera (Go) database into this system's database."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sqlite3
import sys

import asyncpg

from services.cli.infra import EmbeddedPostgres, nats_passwords
from services.cli.main import load_or_create_secrets, load_up_settings
from services.cli.migrate import run_migrations
from services.shared.logging import configure_logging


def parser() -> argparse.ArgumentParser:
    cmd = argparse.ArgumentParser(
        prog="veloera import",
        description="move in from a new-api, one-api or Veloera (Go) database",
    )
    cmd.add_argument(
        "--from",
        dest="source",
        required=True,
        help="SQLite file, postgres://user:pass@host/db or mysql://user:pass@host/db",
    )
    cmd.add_argument(
        "--dry-run", action="store_true", help="report what would be imported; write nothing"
    )
    cmd.add_argument(
        "--source-name",
        default="default",
        help="name of this source in the id mappings (give each source database its own)",
    )
    cmd.add_argument("--batch-size", type=int, default=1000, help="rows per transaction")
    cmd.add_argument("--log-batch-size", type=int, default=20_000, help="log rows per COPY")
    cmd.add_argument(
        "--log-writers", type=int, default=2, help="connections copying log pages at once"
    )
    return cmd


async def run_import_command(args: argparse.Namespace) -> int:
    """DATABASE_URL (or the embedded PostgreSQL of VELOERA_DATA_DIR, started for the import)
    and the CRYPTO_SECRET the services use (or the one `veloera up` keeps in the data dir)."""
    from rich.console import Console

    from services.importer.command import import_command
    from services.importer.run import ImportSettings

    settings = load_up_settings()
    plane = load_or_create_secrets(settings.data_dir)
    pg: EmbeddedPostgres | None = None
    database_url, nats_url = settings.database_url, settings.nats_url
    passwords: dict[str, str] = {}
    if nats_url == "-":
        nats_url = f"nats://127.0.0.1:{settings.embedded_nats_port}"
        passwords = nats_passwords(plane)  # the embedded server's users
    try:
        if database_url == "-":
            embedded = EmbeddedPostgres(
                settings.data_dir / "postgres",
                settings.embedded_pg_port,
                password=plane["EMBEDDED_PG_PASSWORD"],
            )
            database_url = embedded.dsn
            if not await asyncio.to_thread(_listening, settings.embedded_pg_port):
                pg = embedded  # `veloera up` is not running: start the server for the import
                await asyncio.to_thread(pg.start)
        await run_migrations(database_url)
        secret = plane["CRYPTO_SECRET"]
        options = ImportSettings(
            source=args.source,
            database_url=database_url,
            crypto_secret=secret,
            source_name=args.source_name,
            dry_run=args.dry_run,
            batch_size=max(args.batch_size, 1),
            log_batch_size=max(args.log_batch_size, 1),
            log_writers=max(args.log_writers, 1),
        )
        try:
            report = await import_command(
                options, nats_url=nats_url, console=Console(), nats_passwords=passwords
            )
        except (OSError, ValueError, RuntimeError, sqlite3.Error, asyncpg.PostgresError) as exc:
            # A source that is missing, unreadable or not an upstream database: say which.
            print(f"veloera import: {exc}", file=sys.stderr)
            return 2
        return 0 if report.ok else 1
    finally:
        if pg is not None:
            await asyncio.to_thread(pg.stop)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging("veloera-import", os.environ.get("LOG_LEVEL", "INFO"))
    return asyncio.run(run_import_command(args))


if __name__ == "__main__":
    sys.exit(main())
