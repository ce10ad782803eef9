"""The real system the tests run against: the session's embedded PostgreSQL and NATS and the
five services, started by the fixtures in tests/conftest.py when a test first asks for them.

Only integration, end-to-end, browser and deploy tests ask: the unit tier never imports this
module (tests/unit/test_unit_tier.py checks it), so it runs without the embedded servers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from services.cli.infra import (
    EmbeddedNats,
    EmbeddedPostgres,
    free_port,
    loopback_service_env,
    nats_passwords,
)
from services.cli.migrate import run_migrations
from services.cli.supervisor import Child, ServiceSpec, start_all, stop_all
from services.shared import nats_auth
from tests.support.helpers import PLANE

METRICS_TOKEN = "test-metrics-token"


@dataclass(frozen=True)
class Infra:
    database_url: str  # as the superuser, password included
    nats_url: str  # as the unrestricted admin user, password included
    work_dir: Path
    nats: EmbeddedNats | None = None  # fault tests restart it (and start it again)
    postgres: EmbeddedPostgres | None = None  # fault tests crash it (and start it again)


def running_infra(work_dir: Path) -> Iterator[Infra]:
    """PostgreSQL (migrated) and NATS with the service users, until the generator closes."""
    pg = EmbeddedPostgres(work_dir / "postgres", free_port(), PLANE["EMBEDDED_PG_PASSWORD"])
    nats = EmbeddedNats(work_dir / "nats", free_port(), nats_passwords(PLANE))
    pg.start()
    try:
        nats.start()
        asyncio.run(run_migrations(pg.dsn))
        admin_url = nats.url_for(nats_auth.ADMIN)
        yield Infra(
            database_url=pg.dsn, nats_url=admin_url, work_dir=work_dir, nats=nats, postgres=pg
        )
    finally:
        nats.stop()
        pg.stop()


def service_environment(infra: Infra) -> dict[str, str]:
    """Every service's environment: the session's servers, each service's own NATS user (the
    address without the admin credential), and the suite's switches."""
    assert infra.nats is not None
    return {
        **loopback_service_env(infra.database_url, infra.nats.url, PLANE),
        "STREAMING_TIMEOUT": "3",
        "HOLD_REAPER_INTERVAL": "1",
        # The web's per-IP rate limits would refuse the suite's traffic from one address;
        # tests/integration/test_web_rate_limits.py switches them on for its own web apps.
        "GLOBAL_API_RATE_LIMIT_ENABLE": "false",
        "GLOBAL_WEB_RATE_LIMIT_ENABLE": "false",
        "CRITICAL_RATE_LIMIT_ENABLE": "false",
        "CHANNEL_PRIVATE_ADDRESSES": "true",  # the fake upstreams listen on loopback
        "WEBHOOK_PRIVATE_ADDRESSES": "true",  # so do the notification tests' webhook receivers
        "NOTIFY_RETRY_SECONDS": "0.2",  # a failing webhook is retried (and given up) quickly
        "NOTIFY_MAX_ATTEMPTS": "3",
        "RELAY_METRICS_TOKEN": METRICS_TOKEN,
        "TASKS_POLL_INTERVAL": "0.5",  # the fake task upstreams finish in two polls
    }


def running_service(
    name: str,
    env: dict[str, str],
    work_dir: Path,
    *,
    grpc_addr_env: str = "",
    http_port_env: str = "",
) -> Iterator[Child]:
    """One service process, ready, until the generator closes."""
    spec = ServiceSpec(
        name,
        grpc_addr=env[grpc_addr_env] if grpc_addr_env else "",
        http_url=f"http://127.0.0.1:{env[http_port_env]}" if http_port_env else "",
    )
    child = Child(spec, env, log_path=work_dir / f"{name}.log")
    try:
        asyncio.run(start_all([child]))
        yield child
    finally:
        stop_all([child])
