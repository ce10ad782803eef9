"""Child-process supervision for `veloera up` and the test suite: start, probe, restart, stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from services.shared.grpcutil import wait_serving

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """How to run one of our services and how to tell it is ready."""

    name: str
    # gRPC address probed with the standard health service, or an HTTP base URL probed at /readyz.
    grpc_addr: str = ""
    http_url: str = ""

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", f"services.{self.name}"]


async def wait_ready(spec: ServiceSpec, timeout: float = 60.0) -> None:
    if spec.grpc_addr:
        await wait_serving(spec.grpc_addr, timeout)
        return
    if not spec.http_url:
        return
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=1.0) as client:
        while True:
            try:
                reply = await client.get(f"{spec.http_url}/readyz")
                if reply.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{spec.name} not ready at {spec.http_url} after {timeout}s")
            await asyncio.sleep(0.1)


@dataclass
class Child:
    """One supervised service process. Output goes to `log_path`, or to our stdout."""

    spec: ServiceSpec
    env: Mapping[str, str]
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    restarts: int = field(default=0, init=False)
    _log: IO[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        if self.log_path is not None and self._log is None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            self.spec.argv,
            env={**os.environ, **self.env},
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log is not None else None,
        )

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, wait up to `grace` for the service to drain, then SIGKILL."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %.0fs; killing it", self.spec.name, grace)
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


async def start_all(children: list[Child], timeout: float = 60.0) -> None:
    """Start children in order, each ready before the next starts (later ones depend on it)."""
    for child in children:
        child.start()
        try:
            await wait_ready(child.spec, timeout)
        except TimeoutError as exc:
            tail = child.log_tail()
            raise RuntimeError(f"{child.spec.name} did not become ready: {exc}\n{tail}") from exc
        code = child.exited()
        if code is not None:  # what answered the probe was not our child
            raise RuntimeError(
                f"{child.spec.name} exited with {code} while starting (is another program "
                f"on its port?)\n{child.log_tail()}"
            )


def stop_all(children: list[Child], grace: float = 15.0) -> None:
    """Stop in reverse start order: edges first, so nothing calls a stopped dependency."""
    for child in reversed(children):
        child.stop(grace)


async def supervise(children: list[Child], stop: asyncio.Event) -> None:
    """Restart any child that exits on its own, with exponential backoff, until `stop` is set."""
    next_try: dict[str, float] = {}
    while not stop.is_set():
        for child in children:
            code = child.exited()
            if code is None:
                continue
            now = time.monotonic()
            due = next_try.get(child.spec.name)
            if due is None:
                delay = min(30.0, 0.5 * 2 ** min(child.restarts, 6))
                logger.warning(
                    "%s exited with code %s; restarting in %.1fs", child.spec.name, code, delay
                )
                next_try[child.spec.name] = now + delay
            elif now >= due:
                child.restarts += 1
                child.start()
                del next_try[child.spec.name]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.5)
