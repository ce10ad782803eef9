"""The `veloera` command: `veloera up` runs the whole system, `veloera migrate` the migrations,
`veloera import` moves a new-api, one-api or Veloera (Go) database in."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import socket
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from services.cli.infra import EmbeddedNats, EmbeddedPostgres
from services.cli.migrate import run_migrations
from services.cli.supervisor import Child, ServiceSpec, start_all, stop_all, supervise
from services.shared.config import Env
from services.shared.logging import configure_logging

logger = logging.getLogger("veloera")


@dataclass(frozen=True, slots=True)
class UpSettings:
    data_dir: Path
    database_url: str
    nats_url: str
    host: str
    relay_port: int
    web_port: int
    accounts_port: int
    billing_port: int
    embedded_pg_port: int
    embedded_nats_port: int


def load_up_settings() -> UpSettings:
    env = Env()
    settings = UpSettings(
        data_dir=Path(env.str("VELOERA_DATA_DIR", "./.veloera")).resolve(),
        database_url=env.str("DATABASE_URL", "-"),
        nats_url=env.str("NATS_URL", "-"),
        host=env.str("BIND_HOST", "127.0.0.1"),
        relay_port=env.int("RELAY_PORT", 3000),
        web_port=env.int("WEB_PORT", 3001),
        accounts_port=env.int("ACCOUNTS_PORT", 50051),
        billing_port=env.int("BILLING_PORT", 50052),
        embedded_pg_port=env.int("EMBEDDED_PG_PORT", 5433),
        embedded_nats_port=env.int("EMBEDDED_NATS_PORT", 4223),
    )
    env.check(service="veloera up")
    return settings


def load_or_create_secrets(data_dir: Path) -> dict[str, str]:
    """CRYPTO_SECRET and SESSION_SECRET from the environment, else generated once and kept in the
    data directory (mode 0600), so a second start can still decrypt what the first stored."""
    path = data_dir / "secrets.env"
    stored: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, _, value = line.partition("=")
            if value:
                stored[name] = value
    found = {}
    for name in ("CRYPTO_SECRET", "SESSION_SECRET"):
        found[name] = os.environ.get(name) or stored.get(name) or secrets.token_urlsafe(32)
    if any(stored.get(name) != value for name, value in found.items() if name not in os.environ):
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text("".join(f"{name}={value}\n" for name, value in found.items()))
    return found


def service_specs(settings: UpSettings) -> list[ServiceSpec]:
    host = settings.host if settings.host != "0.0.0.0" else "127.0.0.1"
    return [
        ServiceSpec("accounts", grpc_addr=f"{host}:{settings.accounts_port}"),
        ServiceSpec("billing", grpc_addr=f"{host}:{settings.billing_port}"),
        ServiceSpec("tasks"),
        ServiceSpec("relay", http_url=f"http://{host}:{settings.relay_port}"),
        ServiceSpec("web", http_url=f"http://{host}:{settings.web_port}"),
    ]


async def up(settings: UpSettings) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    pg: EmbeddedPostgres | None = None
    nats: EmbeddedNats | None = None
    database_url, nats_url = settings.database_url, settings.nats_url
    children: list[Child] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if database_url == "-":
            pg = EmbeddedPostgres(settings.data_dir / "postgres", settings.embedded_pg_port)
            await asyncio.to_thread(pg.start)
            database_url = pg.dsn
            logger.info("embedded PostgreSQL running at %s", database_url)
        if nats_url == "-":
            nats = EmbeddedNats(settings.data_dir / "nats", settings.embedded_nats_port)
            await asyncio.to_thread(nats.start)
            nats_url = nats.url
            logger.info("embedded NATS running at %s", nats_url)
        applied = await run_migrations(database_url)
        logger.info("migrations applied", extra={"applied": applied})
        specs = service_specs(settings)
        env = {
            **load_or_create_secrets(settings.data_dir),
            "DATABASE_URL": database_url,
            "NATS_URL": nats_url,
            "BIND_HOST": settings.host,
            "RELAY_PORT": str(settings.relay_port),
            "WEB_PORT": str(settings.web_port),
            "ACCOUNTS_PORT": str(settings.accounts_port),
            "BILLING_PORT": str(settings.billing_port),
            "ACCOUNTS_ADDR": specs[0].grpc_addr,
            "BILLING_ADDR": specs[1].grpc_addr,
        }
        children = [Child(spec, env) for spec in specs]
        await start_all(children)
        print_banner(settings)
        await supervise(children, stop)
        return 0
    finally:
        logger.info("stopping")
        await asyncio.to_thread(stop_all, children)
        if nats is not None:
            await asyncio.to_thread(nats.stop)
        if pg is not None:
            await asyncio.to_thread(pg.stop)
        logger.info("stopped")


def print_banner(settings: UpSettings) -> None:
    host = "127.0.0.1" if settings.host == "0.0.0.0" else settings.host
    console = f"http://{host}:{settings.web_port}"
    relay = f"http://{host}:{settings.relay_port}/v1"
    print(
        f"\n  Veloera is running.\n"
        f"    console: {console}\n"
        f"    relay:   {relay}\n\n"
        f"  Next: open the console to create the root user (or POST {console}/api/setup),\n"
        f"  add a channel, create an API key, and point any OpenAI client at {relay}.\n"
        f"  Stop with Ctrl-C.\n",
        flush=True,
    )


def _import_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "import", help="move in from a new-api, one-api or Veloera (Go) database"
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


async def run_import_command(args: argparse.Namespace) -> int:
    """DATABASE_URL (or the embedded PostgreSQL of VELOERA_DATA_DIR, started for the import)
    and the CRYPTO_SECRET the services use (or the one `veloera up` keeps in the data dir)."""
    from rich.console import Console

    from services.importer.command import import_command
    from services.importer.run import ImportSettings

    settings = load_up_settings()
    pg: EmbeddedPostgres | None = None
    database_url, nats_url = settings.database_url, settings.nats_url
    if nats_url == "-":
        nats_url = f"nats://127.0.0.1:{settings.embedded_nats_port}"
    try:
        if database_url == "-":
            embedded = EmbeddedPostgres(settings.data_dir / "postgres", settings.embedded_pg_port)
            database_url = embedded.dsn
            if not await asyncio.to_thread(_listening, settings.embedded_pg_port):
                pg = embedded  # `veloera up` is not running: start the server for the import
                await asyncio.to_thread(pg.start)
        await run_migrations(database_url)
        secret = load_or_create_secrets(settings.data_dir)["CRYPTO_SECRET"]
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
            report = await import_command(options, nats_url=nats_url, console=Console())
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
    parser = argparse.ArgumentParser(prog="veloera", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="run the whole system on this machine")
    commands.add_parser("migrate", help="apply database migrations (DATABASE_URL)")
    _import_parser(commands)
    args = parser.parse_args(argv)
    configure_logging("veloera", os.environ.get("LOG_LEVEL", "INFO"))
    if args.command == "import":
        return asyncio.run(run_import_command(args))
    if args.command == "migrate":
        env = Env()
        dsn = env.str("DATABASE_URL")
        env.check(service="veloera migrate")
        applied = asyncio.run(run_migrations(dsn))
        logger.info("migrations applied", extra={"applied": applied})
        return 0
    return asyncio.run(up(load_up_settings()))


if __name__ == "__main__":
    sys.exit(main())
