"""Per-process CPU time and peak RSS (psutil), sampled around and during each bench run."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import psutil

LOADGEN = "loadgen"  # this process: the load generator (and the orchestrator, idle during runs)


def _family(proc: Any) -> list[Any]:
    """The process and, for PostgreSQL, its backends (children)."""
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return [proc]


def _cpu(procs: list[Any]) -> float:
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += float(times.user) + float(times.system)
    return total


def _rss(procs: list[Any]) -> int:
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += int(proc.memory_info().rss)
    return total


@dataclass
class Usage:
    """CPU seconds used per process during one run, and the peak RSS (bytes) seen."""

    cpu_s: dict[str, float] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)


class Monitor:
    """Watches named processes. `families` names count children too (PostgreSQL backends)."""

    def __init__(self, pids: dict[str, int], families: frozenset[str] = frozenset({"postgres"})):
        self.procs: dict[str, Any] = {LOADGEN: psutil.Process(os.getpid())}
        for name, pid in pids.items():
            with contextlib.suppress(psutil.Error):
                self.procs[name] = psutil.Process(pid)
        self.families = families
        self.overall_peak: dict[str, int] = {}

    def add(self, name: str, pid: int) -> None:
        with contextlib.suppress(psutil.Error):
            self.procs[name] = psutil.Process(pid)

    def _group(self, name: str) -> list[Any]:
        proc = self.procs[name]
        return _family(proc) if name in self.families else [proc]

    def cpu(self) -> dict[str, float]:
        return {name: _cpu(self._group(name)) for name in self.procs}

    def rss(self) -> dict[str, int]:
        return {name: _rss(self._group(name)) for name in self.procs}

    async def wait_idle(self, names: tuple[str, ...], *, busy: float = 0.05,
                        limit: float = 20.0) -> float:  # fmt: skip
        """Wait (up to `limit` s) until `names` use < `busy` of a core: leftovers of the last
        scenario (draining streams, settlements) must not bill the next one. Returns the wait."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        watched = [n for n in names if n in self.procs]
        while loop.time() - started < limit:
            before = self.cpu()
            await asyncio.sleep(0.5)
            after = self.cpu()
            if all(after[n] - before[n] < busy * 0.5 for n in watched):
                break
        return loop.time() - started

    @contextlib.asynccontextmanager
    async def measure(self, interval: float = 0.25) -> AsyncIterator[Usage]:
        """CPU delta over the block; RSS sampled every `interval` seconds meanwhile."""
        usage = Usage()
        before = self.cpu()

        async def sample() -> None:
            while True:
                for name, value in self.rss().items():
                    usage.peak_rss[name] = max(usage.peak_rss.get(name, 0), value)
                await asyncio.sleep(interval)

        sampler = asyncio.create_task(sample())
        try:
            yield usage
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            after = self.cpu()
            usage.cpu_s = {name: after[name] - before.get(name, 0.0) for name in after}
            for name, value in usage.peak_rss.items():
                self.overall_peak[name] = max(self.overall_peak.get(name, 0), value)
