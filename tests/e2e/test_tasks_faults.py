"""A tasks replica killed mid-poll loses nothing: another replica polls the task once the dead
one's lease ends, and the failed task is charged once and refunded once (user and key)."""

from __future__ import annotations

import pytest

from services.cli.infra import free_port
from services.cli.supervisor import Child, ServiceSpec, start_all
from tests.fakes.task_upstream import FakeTaskUpstream
from tests.support.fault_kit import restore
from tests.support.infra import Infra
from tests.support.relay_kit import world as world
from tests.support.tasks_kit import MJ_PRICE_USD, _drawer, _finished
from tests.support.world import World, eventually

pytestmark = pytest.mark.e2e


async def test_a_replica_killed_mid_poll_leaves_the_task_to_another(
    world: World,
    fake_tasks: FakeTaskUpstream,
    tasks_service: Child,
    service_env: dict[str, str],
    infra: Infra,
) -> None:
    drawer = await _drawer(world, fake_tasks)
    quota0, budget0 = await drawer.balances()
    port = free_port()
    doomed = Child(
        ServiceSpec("tasks", http_url=f"http://127.0.0.1:{port}"),
        {**service_env, "TASKS_METRICS_PORT": str(port), "TASKS_POLL_LEASE": "3"},
        log_path=infra.work_dir / "tasks-doomed.log",
    )
    tasks_service.stop()  # the doomed replica is the only one polling while it lives
    try:
        await start_all([doomed])
        fake_tasks.polls_open.clear()
        held = fake_tasks.held
        reply = await drawer.post("/mj/submit/imagine", {"prompt": "this will fail"})
        assert reply.status_code == 200 and reply.json()["code"] == 1, reply.text
        task_id = reply.json()["result"]

        async def mid_poll() -> bool | None:
            return True if fake_tasks.held > held else None

        await eventually(mid_poll, within=20)
        assert doomed.proc is not None
        doomed.proc.kill()  # SIGKILL: no drain, its lease stays on the task
        doomed.proc.wait()
    finally:
        fake_tasks.polls_open.set()
        doomed.stop()
        await restore(tasks_service)

    task = await _finished(drawer, f"/mj/task/{task_id}/fetch", ("SUCCESS", "FAILURE"))
    assert task["status"] == "FAILURE"

    async def refunded() -> bool | None:
        return True if await drawer.balances() == (quota0, budget0) else None

    await eventually(refunded, within=20)
    logs = await drawer.logs()
    price = int(MJ_PRICE_USD * 500_000)
    charges = [row for row in logs if row["model_name"] == "mj_imagine"]
    refunds = [row for row in logs if "补偿" in row["content"]]
    assert [row["quota"] for row in charges] == [price]
    assert [row["quota"] for row in refunds] == [price]
