"""The `veloera` command: `veloera up` runs the whole system, `veloera migrate` the migrations,
`veloera import` moves a new-api, one-api or Veloera (Go) database in."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from services.cli.infra import (
    EmbeddedNats,
    EmbeddedPostgres,
    PortInUse,
    check_port_free,
    generate_plane_secrets,
    nats_passwords,
    write_private,
)
from services.cli.migrate import run_migrations
from services.cli.supervisor import Child, ServiceSpec, start_all, stop_all, supervise
from services.shared import internal_auth, nats_auth
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
    accounts_metrics_port: int
    billing_metrics_port: int
    tasks_metrics_port: int

    @property
    def embedded_pg(self) -> bool:
        return self.database_url == "-"

    @property
    def embedded_nats(self) -> bool:
        return self.nats_url == "-"


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
        accounts_metrics_port=env.int("ACCOUNTS_METRICS_PORT", 9101),
        billing_metrics_port=env.int("BILLING_METRICS_PORT", 9102),
        tasks_metrics_port=env.int("TASKS_METRICS_PORT", 9104),
    )
    env.check(service="veloera up")
    return settings


def load_or_create_secrets(data_dir: Path) -> dict[str, str]:
    """Every secret of this deployment (see infra.generate_plane_secrets), each from the
    environment when set there, else generated once and kept in `<data dir>/secrets.env` (mode
    0600): a second start can still decrypt what the first stored and log in to its own
    PostgreSQL and NATS. Never printed."""
    path = data_dir / "secrets.env"
    stored: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, _, value = line.partition("=")
            if value:
                stored[name] = value
    found = {
        name: os.environ.get(name) or stored.get(name) or fresh
        for name, fresh in generate_plane_secrets().items()
    }
    keep = {name: value for name, value in found.items() if name not in os.environ}
    if any(stored.get(name) != value for name, value in keep.items()):
        write_private(path, "".join(f"{k}={v}\n" for k, v in {**stored, **keep}.items()))
    return found


def check_ports(settings: UpSettings) -> None:
    """Refuse to start beside anything listening on a port we need (PortInUse names the port
    and its variable): `veloera up` never talks to a server it did not start."""
    wanted = [
        (settings.relay_port, "RELAY_PORT"),
        (settings.web_port, "WEB_PORT"),
        (settings.accounts_port, "ACCOUNTS_PORT"),
        (settings.billing_port, "BILLING_PORT"),
        (settings.accounts_metrics_port, "ACCOUNTS_METRICS_PORT"),
        (settings.billing_metrics_port, "BILLING_METRICS_PORT"),
        (settings.tasks_metrics_port, "TASKS_METRICS_PORT"),
    ]
    for port, variable in wanted:
        check_port_free(settings.host, port, variable)
    if settings.embedded_pg:
        check_port_free("127.0.0.1", settings.embedded_pg_port, "EMBEDDED_PG_PORT")
    if settings.embedded_nats:
        check_port_free("127.0.0.1", settings.embedded_nats_port, "EMBEDDED_NATS_PORT")


# The secrets each service is given (least privilege: the relay never sees the database or
# CRYPTO_SECRET, the web service no NATS password; billing decrypts the EPay key with
# CRYPTO_SECRET). accounts and billing check the callers' gRPC tokens; each presents its own.
_CALLER_TOKENS = tuple(internal_auth.token_variable(c) for c in internal_auth.REQUIRED_CALLERS)
SERVICE_SECRETS: dict[str, tuple[str, ...]] = {
    "accounts": (
        "DATABASE_URL", "CRYPTO_SECRET", *_CALLER_TOKENS,
        nats_auth.password_variable(nats_auth.ACCOUNTS),
    ),
    "billing": (
        "DATABASE_URL", "CRYPTO_SECRET", *_CALLER_TOKENS,
        nats_auth.password_variable(nats_auth.BILLING),
    ),
    "tasks": (
        "DATABASE_URL", internal_auth.token_variable(internal_auth.TASKS),
        nats_auth.password_variable(nats_auth.TASKS),
    ),
    "relay": (
        internal_auth.token_variable(internal_auth.RELAY),
        nats_auth.password_variable(nats_auth.RELAY),
    ),
    "web": ("SESSION_SECRET", internal_auth.token_variable(internal_auth.WEB)),
}  # fmt: skip


def child_env(name: str, common: dict[str, str], secrets: dict[str, str]) -> dict[str, str]:
    """`common` plus the secrets service `name` needs (those in `secrets`; with an external
    NATS_URL there are no NATS passwords here and the service keeps its environment's)."""
    own = {var: secrets[var] for var in SERVICE_SECRETS[name] if var in secrets}
    return {**common, **own}


def service_specs(settings: UpSettings) -> list[ServiceSpec]:
    host = settings.host if settings.host != "0.0.0.0" else "127.0.0.1"
    return [
        ServiceSpec("accounts", grpc_addr=f"{host}:{settings.accounts_port}"),
        ServiceSpec("billing", grpc_addr=f"{host}:{settings.billing_port}"),
        ServiceSpec("tasks", http_url=f"http://{host}:{settings.tasks_metrics_port}"),
        ServiceSpec("relay", http_url=f"http://{host}:{settings.relay_port}"),
        ServiceSpec("web", http_url=f"http://{host}:{settings.web_port}"),
    ]


async def up(settings: UpSettings) -> int:
    try:
        check_ports(settings)
    except PortInUse as exc:
        logger.error("cannot start: %s", exc)
        print(f"veloera up: {exc}", file=sys.stderr, flush=True)
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    plane = load_or_create_secrets(settings.data_dir)
    if not settings.embedded_nats:
        plane = {k: v for k, v in plane.items() if not k.startswith("NATS_PASSWORD_")}
    pg: EmbeddedPostgres | None = None
    nats: EmbeddedNats | None = None
    database_url, nats_url = settings.database_url, settings.nats_url
    children: list[Child] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if settings.embedded_pg:
            pg = EmbeddedPostgres(
                settings.data_dir / "postgres",
                settings.embedded_pg_port,
                password=plane["EMBEDDED_PG_PASSWORD"],
            )
            await asyncio.to_thread(pg.start)
            database_url = pg.dsn
            logger.info("embedded PostgreSQL running on port %d", pg.port)
        if settings.embedded_nats:
            nats = EmbeddedNats(
                settings.data_dir / "nats", settings.embedded_nats_port, nats_passwords(plane)
            )
            await asyncio.to_thread(nats.start)
            nats_url = nats.url
            logger.info("embedded NATS running at %s", nats_url)
        applied = await run_migrations(database_url)
        logger.info("migrations applied", extra={"applied": applied})
        specs = service_specs(settings)
        common = {
            "NATS_URL": nats_url,
            "BIND_HOST": settings.host,
            "RELAY_PORT": str(settings.relay_port),
            "WEB_PORT": str(settings.web_port),
            "ACCOUNTS_PORT": str(settings.accounts_port),
            "BILLING_PORT": str(settings.billing_port),
            "ACCOUNTS_ADDR": specs[0].grpc_addr,
            "BILLING_ADDR": specs[1].grpc_addr,
            # local mode: channels may point at a model server on this machine or network
            "CHANNEL_PRIVATE_ADDRESSES": os.environ.get("CHANNEL_PRIVATE_ADDRESSES", "true"),
        }
        secrets = {**plane, "DATABASE_URL": database_url}
        children = [Child(spec, child_env(spec.name, common, secrets)) for spec in specs]
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


def run_importer(args: list[str]) -> int:
    """`veloera import ...` runs `python -m services.importer ...`: the importer reuses
    accounts' validation rules, and this command imports no service (it starts them all as
    processes, this one included)."""
    command = [sys.executable, "-m", "services.importer", *args]
    return subprocess.run(command, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="veloera", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="run the whole system on this machine")
    commands.add_parser("migrate", help="apply database migrations (DATABASE_URL)")
    commands.add_parser(
        "import",
        help="move in from a new-api, one-api or Veloera (Go) database (--help for options)",
        add_help=False,
    )
    given = sys.argv[1:] if argv is None else argv
    if given[:1] == ["import"]:
        return run_importer(given[1:])
    args = parser.parse_args(argv)
    configure_logging("veloera", os.environ.get("LOG_LEVEL", "INFO"))
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
