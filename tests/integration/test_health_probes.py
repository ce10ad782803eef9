"""Probes: the tasks worker's own health port, and the container healthcheck command."""

from __future__ import annotations

import httpx
import pytest

from services.cli.infra import free_port
from services.cli.supervisor import Child
from services.shared import healthcheck

pytestmark = pytest.mark.integration


async def test_tasks_probes_answer_health_not_metrics(tasks_service: Child) -> None:
    base = tasks_service.spec.http_url
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        alive = await client.get("/healthz")
        ready = await client.get("/readyz")
        metrics = await client.get("/metrics")
        unknown = await client.get("/nothing-here")
    assert alive.status_code == 200 and alive.json() == {"status": "ok"}
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    assert "veloera_tasks_worker_up 1.0" in metrics.text
    # The shared collectors the dashboard and alerts read: its PostgreSQL pool's size.
    assert 'veloera_db_pool_connections{schema="tasks",state="max"} 5.0' in metrics.text
    assert unknown.status_code == 404


def test_healthcheck_command_passes_on_each_kind_of_service(
    accounts_addr: str, billing_addr: str, tasks_service: Child, relay_url: str, web_url: str
) -> None:
    """What compose's healthchecks run: gRPC health for accounts/billing, HTTP for the rest."""
    for target in (
        accounts_addr,
        billing_addr,
        f"{tasks_service.spec.http_url}/readyz",
        f"{relay_url}/healthz",
        f"{web_url}/readyz",
    ):
        assert healthcheck.main([target]) == 0, target


def test_healthcheck_command_fails_with_a_reason(
    tasks_service: Child, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = f"127.0.0.1:{free_port()}"
    assert healthcheck.main([closed]) == 1
    assert healthcheck.main([f"{tasks_service.spec.http_url}/missing"]) == 1
    err = capsys.readouterr().err
    assert f"unhealthy: {closed}: UNAVAILABLE" in err
    assert "answered 404" in err
