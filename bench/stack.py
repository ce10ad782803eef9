"""Start the whole system for the bench (embedded PostgreSQL + NATS, our five services, the fake
upstream), provision a priced model, a channel, a funded user and a key; tear it all down."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.fake_upstream import SLOW_MODEL
from services.cli.infra import (
    EmbeddedNats,
    EmbeddedPostgres,
    free_port,
    generate_plane_secrets,
    loopback_service_env,
    nats_passwords,
    wait_port,
)
from services.cli.migrate import run_migrations
from services.cli.supervisor import Child, ServiceSpec, start_all, stop_all
from tests.support.helpers import create_channel, create_token, create_user, root_console

MODEL = "bench-model"
EMBED_MODEL = "bench-embed"
MODELS = [MODEL, SLOW_MODEL, EMBED_MODEL]
USER_QUOTA = 10**15  # never the limit during a bench run


@dataclass
class FakeProcess:
    """The fake upstream, as its own process."""

    port: int
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_path: Path) -> None:
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.fake_upstream", "--port", str(self.port), *self.args],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_port("127.0.0.1", self.port, 15.0, self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Stack:
    """The running system; `key` is the bench user's API key (with `sk-`)."""

    fake: FakeProcess
    log_level: str = "INFO"
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="veloera-bench-")))
    pg: EmbeddedPostgres | None = None
    nats: EmbeddedNats | None = None
    env: dict[str, str] = field(default_factory=dict)
    children: dict[str, Child] = field(default_factory=dict)
    key: str = ""
    user_id: int = 0
    # An existing database (its DSN) instead of a fresh embedded PostgreSQL (the logs bench
    # reuses one it filled before).
    dsn: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)  # over the services' environment

    @property
    def relay_url(self) -> str:
        return f"http://127.0.0.1:{self.env['RELAY_PORT']}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.env['WEB_PORT']}"

    @property
    def database_url(self) -> str:
        return self.env["DATABASE_URL"]

    async def start(self) -> None:
        plane = generate_plane_secrets(admin=True)
        if not self.dsn:
            self.pg = EmbeddedPostgres(
                self.work_dir / "postgres", free_port(), plane["EMBEDDED_PG_PASSWORD"]
            )
            await asyncio.to_thread(self.pg.start)
            self.dsn = self.pg.dsn
        self.nats = EmbeddedNats(self.work_dir / "nats", free_port(), nats_passwords(plane))
        await asyncio.to_thread(self.nats.start)
        await run_migrations(self.dsn)
        self.env = loopback_service_env(self.dsn, self.nats.url, plane, log_level=self.log_level)
        self.env["CHANNEL_PRIVATE_ADDRESSES"] = "true"  # the fake upstream listens on loopback
        self.env.update(self.extra_env)
        specs = [
            ServiceSpec("accounts", grpc_addr=self.env["ACCOUNTS_ADDR"]),
            ServiceSpec("billing", grpc_addr=self.env["BILLING_ADDR"]),
            ServiceSpec("tasks"),
            ServiceSpec("relay", http_url=self.relay_url),
            ServiceSpec("web", http_url=self.web_url),
        ]
        for spec in specs:
            self.children[spec.name] = Child(spec, self.env, self.work_dir / f"{spec.name}.log")
        await start_all(list(self.children.values()))

    async def start_extra_relay(self, name: str = "relay2") -> str:
        """A second relay process on its own port (same env): the 2-worker throughput case."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**self.env, "RELAY_PORT": str(port)}
        child = Child(ServiceSpec("relay", http_url=url), env, self.work_dir / f"{name}.log")
        self.children[name] = child
        await start_all([child])
        return url

    def stop_child(self, name: str) -> None:
        child = self.children.pop(name, None)
        if child is not None:
            stop_all([child])

    async def provision(self) -> None:
        """Root, prices, a channel at the fake upstream, a funded user and an unlimited key."""
        root = await root_console(self.web_url)
        try:
            ratios = json.dumps(dict.fromkeys(MODELS, 1.0))
            await root.call("PUT", "/api/option/", json={"key": "ModelRatio", "value": ratios})
            await create_channel(root, base_url=self.fake.url, models=MODELS)
            console, self.user_id = await create_user(root, quota=USER_QUOTA)
            try:
                token = await create_token(console, unlimited_quota=True)
            finally:
                await console.aclose()
        finally:
            await root.aclose()
        key = str(token["key"])
        self.key = key if key.startswith("sk-") else f"sk-{key}"
        await self.wait_for_model(self.relay_url)

    async def wait_for_model(self, relay_url: str, timeout: float = 30.0) -> None:
        """The relay learns about the channel from accounts' change event (or its poll)."""
        deadline = time.monotonic() + timeout
        headers = {"Authorization": f"Bearer {self.key}"}
        async with httpx.AsyncClient(timeout=5.0) as client:
            while True:
                reply = await client.get(f"{relay_url}/v1/models", headers=headers)
                if reply.status_code == 200 and any(
                    item.get("id") == MODEL for item in reply.json().get("data", [])
                ):
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"relay never listed {MODEL}: {reply.status_code} "
                                       f"{reply.text[:200]}")  # fmt: skip
                await asyncio.sleep(0.2)

    def pids(self) -> dict[str, int]:
        """Process ids by name (PostgreSQL is the postmaster; its backends are its children)."""
        found = {name: c.proc.pid for name, c in self.children.items() if c.proc is not None}
        if self.pg is not None and self.pg.proc is not None:
            found["postgres"] = self.pg.proc.pid
        if self.nats is not None and self.nats.proc is not None:
            found["nats"] = self.nats.proc.pid
        return found

    def log_tail(self, name: str, lines: int = 20) -> str:
        child = self.children.get(name)
        return child.log_tail(lines) if child is not None else ""

    def stop(self) -> None:
        stop_all(list(self.children.values()), grace=10.0)
        self.children.clear()
        if self.nats is not None:
            self.nats.stop()
        if self.pg is not None:
            self.pg.stop()
        for data in ("postgres", "nats"):  # keep the logs, drop the data
            shutil.rmtree(self.work_dir / data, ignore_errors=True)
