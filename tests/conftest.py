"""Session fixtures: the real system (embedded PostgreSQL + NATS, five services) started once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

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
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.task_upstream import FakeTaskUpstream
from tests.support.helpers import PLANE
from tests.support.infra import METRICS_TOKEN, Infra
from tests.support.options import saved_options as saved_options


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    work_dir = tmp_path_factory.mktemp("veloera")
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


@pytest.fixture(scope="session")
def service_env(infra: Infra) -> dict[str, str]:
    return {
        **loopback_service_env(infra.database_url, _plain_nats_url(infra), PLANE),
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


def _plain_nats_url(infra: Infra) -> str:
    """The server's address without the admin credential: each service logs in as itself."""
    assert infra.nats is not None
    return infra.nats.url


def _run_service(spec: ServiceSpec, env: dict[str, str], work_dir: Path) -> Iterator[Child]:
    child = Child(spec, env, log_path=work_dir / f"{spec.name}.log")
    try:
        asyncio.run(start_all([child]))
        yield child
    finally:
        stop_all([child])


@pytest.fixture(scope="session")
def accounts_service(service_env: dict[str, str], infra: Infra) -> Iterator[Child]:
    spec = ServiceSpec("accounts", grpc_addr=service_env["ACCOUNTS_ADDR"])
    yield from _run_service(spec, service_env, infra.work_dir)


@pytest.fixture(scope="session")
def accounts_addr(accounts_service: Child) -> str:
    return accounts_service.spec.grpc_addr


@pytest.fixture(scope="session")
def billing_service(service_env: dict[str, str], infra: Infra) -> Iterator[Child]:
    spec = ServiceSpec("billing", grpc_addr=service_env["BILLING_ADDR"])
    yield from _run_service(spec, service_env, infra.work_dir)


@pytest.fixture(scope="session")
def billing_addr(billing_service: Child) -> str:
    return billing_service.spec.grpc_addr


@pytest.fixture(scope="session")
def tasks_service(service_env: dict[str, str], infra: Infra) -> Iterator[Child]:
    spec = ServiceSpec("tasks", http_url=f"http://127.0.0.1:{service_env['TASKS_METRICS_PORT']}")
    yield from _run_service(spec, service_env, infra.work_dir)


@pytest.fixture(scope="session")
def relay_service(
    service_env: dict[str, str], infra: Infra, accounts_addr: str, billing_addr: str
) -> Iterator[Child]:
    spec = ServiceSpec("relay", http_url=f"http://127.0.0.1:{service_env['RELAY_PORT']}")
    yield from _run_service(spec, service_env, infra.work_dir)


@pytest.fixture(scope="session")
def relay_url(relay_service: Child) -> str:
    return relay_service.spec.http_url


@pytest.fixture(scope="session")
def web_service(
    service_env: dict[str, str], infra: Infra, accounts_addr: str, billing_addr: str
) -> Iterator[Child]:
    spec = ServiceSpec("web", http_url=f"http://127.0.0.1:{service_env['WEB_PORT']}")
    yield from _run_service(spec, service_env, infra.work_dir)


@pytest.fixture(scope="session")
def web_url(web_service: Child) -> str:
    return web_service.spec.http_url


@pytest.fixture(scope="session")
def fake_tasks() -> Iterator[FakeTaskUpstream]:
    """One midjourney-proxy + Suno fake for the session: the channels tests create for it
    outlive a test module, and routing may pick any of them."""
    fake = FakeTaskUpstream()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
async def closes_clients(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Closes every httpx client the test opened: the sign-in tests make many short-lived
    consoles (one per login step), and one left open fails the run with a ResourceWarning."""
    opened: list[httpx.AsyncClient] = []
    original = httpx.AsyncClient.__init__

    def tracking(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(httpx.AsyncClient, "__init__", tracking)
    yield
    for client in opened:
        await client.aclose()
