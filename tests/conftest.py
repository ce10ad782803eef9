"""Session fixtures: the real system (embedded PostgreSQL + NATS, five services) started once,
when a test first asks for it. The infrastructure code (tests/support/infra.py) is imported
inside the fixtures, so the unit tier neither starts nor imports it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.task_upstream import FakeTaskUpstream
from tests.support.options import saved_options as saved_options
from tests.support.options import saved_pricing as saved_pricing

if TYPE_CHECKING:
    from services.cli.supervisor import Child
    from tests.support.infra import Infra


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    from tests.support.infra import running_infra

    yield from running_infra(tmp_path_factory.mktemp("veloera"))


@pytest.fixture(scope="session")
def service_env(infra: Infra) -> dict[str, str]:
    from tests.support.infra import service_environment

    return service_environment(infra)


def _service(name: str, env: dict[str, str], infra: Infra, **port: str) -> Iterator[Child]:
    from tests.support.infra import running_service

    yield from running_service(name, env, infra.work_dir, **port)


@pytest.fixture(scope="session")
def accounts_service(service_env: dict[str, str], infra: Infra) -> Iterator[Child]:
    yield from _service("accounts", service_env, infra, grpc_addr_env="ACCOUNTS_ADDR")


@pytest.fixture(scope="session")
def accounts_addr(accounts_service: Child) -> str:
    return accounts_service.spec.grpc_addr


@pytest.fixture(scope="session")
def billing_service(service_env: dict[str, str], infra: Infra) -> Iterator[Child]:
    yield from _service("billing", service_env, infra, grpc_addr_env="BILLING_ADDR")


@pytest.fixture(scope="session")
def billing_addr(billing_service: Child) -> str:
    return billing_service.spec.grpc_addr


@pytest.fixture(scope="session")
def tasks_service(service_env: dict[str, str], infra: Infra) -> Iterator[Child]:
    yield from _service("tasks", service_env, infra, http_port_env="TASKS_METRICS_PORT")


@pytest.fixture(scope="session")
def relay_service(
    service_env: dict[str, str], infra: Infra, accounts_addr: str, billing_addr: str
) -> Iterator[Child]:
    yield from _service("relay", service_env, infra, http_port_env="RELAY_PORT")


@pytest.fixture(scope="session")
def relay_url(relay_service: Child) -> str:
    return relay_service.spec.http_url


@pytest.fixture(scope="session")
def web_service(
    service_env: dict[str, str], infra: Infra, accounts_addr: str, billing_addr: str
) -> Iterator[Child]:
    yield from _service("web", service_env, infra, http_port_env="WEB_PORT")


@pytest.fixture(scope="session")
def web_url(web_service: Child) -> str:
    return web_service.spec.http_url


@pytest.fixture(scope="session")
def fake_tasks() -> Iterator[FakeTaskUpstream]:
    """One midjourney-proxy + Suno fake for the session: the channels tests create for it
    outlive a test module, and routing may pick any of them."""
    with FakeTaskUpstream() as fake:
        yield fake


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


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
