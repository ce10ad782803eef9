"""`veloera up` as a newcomer runs it: everything starts, a crash is healed, Ctrl-C stops all."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from services.cli.infra import free_port
from tests.support.helpers import ROOT_PASSWORD

pytestmark = pytest.mark.e2e

READY_WITHIN = 90.0


def wait_until(check: object, *, within: float, what: str) -> None:
    assert callable(check)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {within}s")


class Up:
    """A `veloera up` process with its own data directory and ports."""

    def __init__(self, data_dir: Path) -> None:
        self.env = {
            **os.environ,
            "VELOERA_DATA_DIR": str(data_dir),
            "RELAY_PORT": str(free_port()),
            "WEB_PORT": str(free_port()),
            "ACCOUNTS_PORT": str(free_port()),
            "BILLING_PORT": str(free_port()),
            "ACCOUNTS_METRICS_PORT": str(free_port()),
            "BILLING_METRICS_PORT": str(free_port()),
            "TASKS_METRICS_PORT": str(free_port()),
            "EMBEDDED_PG_PORT": str(free_port()),
            "EMBEDDED_NATS_PORT": str(free_port()),
        }
        for name in ("DATABASE_URL", "NATS_URL", "CRYPTO_SECRET", "SESSION_SECRET"):
            self.env.pop(name, None)
        self.web = f"http://127.0.0.1:{self.env['WEB_PORT']}"
        self.relay = f"http://127.0.0.1:{self.env['RELAY_PORT']}"
        self.log = data_dir.parent / f"{data_dir.name}-up.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "up"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self.ready, within=READY_WITHIN, what="veloera up ready")

    def ready(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        web = httpx.get(f"{self.web}/readyz", timeout=1.0)
        relay = httpx.get(f"{self.relay}/readyz", timeout=1.0)
        return web.status_code == 200 and relay.status_code == 200

    def descendants(self) -> list[psutil.Process]:
        assert self.proc is not None
        children: list[psutil.Process] = psutil.Process(self.proc.pid).children(recursive=True)
        return children

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(60)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    instance = Up(tmp_path / "data")
    try:
        yield instance
    finally:
        if instance.proc is not None and instance.proc.poll() is None:
            for child in instance.descendants():
                child.kill()
            instance.proc.kill()


def service_pid(up: Up, name: str) -> int | None:
    for proc in up.descendants():
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE and proc.cmdline()[-1:] == [
                f"services.{name}"
            ]:
                pid: int = proc.pid
                return pid
    return None


def test_up_runs_heals_stops_cleanly_and_keeps_data(up: Up) -> None:
    up.start()
    assert httpx.get(f"{up.relay}/veloera").text == Path("VELOERA_PROJ").read_text()
    setup = httpx.post(
        f"{up.web}/api/setup",
        json={"username": "root", "password": ROOT_PASSWORD, "confirmPassword": ROOT_PASSWORD},
        timeout=10.0,
    ).json()
    assert setup["success"], setup

    # A crashed service comes back by itself.
    relay_pid = service_pid(up, "relay")
    assert relay_pid is not None
    os.kill(relay_pid, signal.SIGKILL)
    wait_until(
        lambda: service_pid(up, "relay") not in (None, relay_pid) and up.ready(),
        within=READY_WITHIN,
        what="relay restarted",
    )

    # Ctrl-C stops every child: no orphans.
    children = up.descendants()
    assert len(children) >= 7  # five services, PostgreSQL (with its workers), NATS
    assert up.stop() == 0
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], [p.cmdline() for p in alive]

    # A second start reuses the data: the root user created above is still there.
    up.start()
    status = httpx.get(f"{up.web}/api/setup", timeout=5.0).json()
    assert status["data"]["status"] is True
    login = httpx.post(
        f"{up.web}/api/user/login",
        json={"username": "root", "password": ROOT_PASSWORD},
        timeout=10.0,
    ).json()
    assert login["success"], login
    assert up.stop() == 0


@pytest.mark.parametrize("variable", ["EMBEDDED_PG_PORT", "EMBEDDED_NATS_PORT", "BILLING_PORT"])
def test_up_beside_a_taken_port_fails_naming_the_port_and_its_variable(
    up: Up, variable: str
) -> None:
    """Another program (here a bare listener; in the report another instance) holds one port:
    `veloera up` exits non-zero with a message naming the port and the variable, and starts
    nothing (no PostgreSQL data dir, no child process)."""
    port = int(up.env[variable])
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", "up"],
            env=up.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert f"port {port}" in output and variable in output, output
    assert "Veloera is running" not in output
    assert not (Path(up.env["VELOERA_DATA_DIR"]) / "postgres").exists()


def test_up_keeps_its_secrets_private_and_never_prints_them(up: Up) -> None:
    up.start()
    assert up.stop() == 0
    stored = Path(up.env["VELOERA_DATA_DIR"]) / "secrets.env"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in stored.read_text().splitlines())
    for name in ("INTERNAL_TOKEN_RELAY", "INTERNAL_TOKEN_WEB", "EMBEDDED_PG_PASSWORD",
                 "NATS_PASSWORD_RELAY", "CRYPTO_SECRET"):  # fmt: skip
        assert len(values[name]) >= 32
    log = up.log.read_text()
    assert not [name for name, value in values.items() if value in log]
