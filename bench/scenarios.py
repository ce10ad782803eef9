"""The bench scenarios and the interleaved runner (direct to the fake vs through the relay)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Any

from bench.fake_upstream import SLOW_MODEL
from bench.load import (
    LoadPlan,
    LoadResult,
    Target,
    anthropic_body,
    chat_body,
    embeddings_body,
    gemini_body,
    run_load,
)
from bench.monitor import Monitor
from bench.stack import EMBED_MODEL, MODEL

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
OUR_SERVICES = ("relay", "relay2", "accounts", "billing")


@dataclass(frozen=True, slots=True)
class Scenario:
    """One kind of traffic, run at each concurrency on each side."""

    name: str
    path: str
    body: bytes
    stream: bool = False
    concurrencies: tuple[int, ...] = (1, 16, 64, 256)
    duration: float = 3.0
    per_worker: int = 0  # > 0: each connection sends this many requests, then stops
    stamps: bool = False
    timeout: float = 60.0
    keep_ids: bool = False
    sides: tuple[str, ...] = ("direct", "relay")
    ramp: float = 0.0  # seconds over which the connections start


@dataclass
class RunRecord:
    """One measured run: the load summary plus the processes' CPU and memory during it."""

    scenario: str
    concurrency: int
    side: str
    repeat: int
    summary: dict[str, Any]
    cpu_ms_per_request: dict[str, float]
    cpu_s: dict[str, float]
    peak_rss_mb: dict[str, float]
    settled: list[tuple[str, float]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BenchConfig:
    repeats: int = 3
    duration: float = 3.0
    warmup: float = 0.5
    concurrencies: tuple[int, ...] = (1, 16, 64, 256)
    slow_streams: int = 1000
    slow_chunks: int = 5
    slow_interval: float = 1.0


def build_scenarios(config: BenchConfig, embeddings: bool) -> list[Scenario]:
    levels = config.concurrencies
    low = tuple(c for c in levels if c <= 16) or levels[:1]
    prompt = "x" * (100 * 1024)
    slow_timeout = config.slow_chunks * config.slow_interval + 30.0
    scenarios = [
        Scenario("chat", CHAT, chat_body(MODEL), concurrencies=levels, duration=config.duration,
                 keep_ids=True),
        Scenario("stream16", CHAT, chat_body(MODEL, stream=True), stream=True,
                 concurrencies=levels, duration=config.duration),
        # The same chat through the Anthropic and Gemini ingress formats: the relay side only
        # (the fake speaks OpenAI); compare with chat's relay side for the translation's cost.
        Scenario("anthropic", "/v1/messages", anthropic_body(MODEL), concurrencies=low,
                 duration=config.duration, sides=("relay",)),
        Scenario("gemini", f"/v1beta/models/{MODEL}:generateContent", gemini_body(),
                 concurrencies=low, duration=config.duration, sides=("relay",)),
        Scenario("embeddings", EMBEDDINGS, embeddings_body(EMBED_MODEL), concurrencies=low,
                 duration=config.duration,
                 sides=("direct", "relay") if embeddings else ("direct",)),
        Scenario("prompt100k", CHAT, chat_body(MODEL, prompt=prompt), concurrencies=low,
                 duration=config.duration),
        Scenario("slow-streams", CHAT, chat_body(SLOW_MODEL, stream=True), stream=True,
                 concurrencies=(config.slow_streams,), per_worker=1, stamps=True,
                 timeout=slow_timeout, ramp=config.slow_interval),
    ]  # fmt: skip
    return scenarios


def _record(scenario: Scenario, side: str, repeat: int, result: LoadResult,
            cpu_s: dict[str, float], peak_rss: dict[str, int]) -> RunRecord:  # fmt: skip
    served = max(result.ok, 1)
    per_request = {name: round(seconds * 1000 / served, 4) for name, seconds in cpu_s.items()}
    ours = sum(per_request.get(name, 0.0) for name in OUR_SERVICES)
    per_request["ours_total"] = round(ours, 4)
    return RunRecord(
        scenario=scenario.name, concurrency=result.concurrency, side=side, repeat=repeat,
        summary=result.summary(), cpu_ms_per_request=per_request,
        cpu_s={name: round(value, 4) for name, value in cpu_s.items()},
        peak_rss_mb={name: round(value / 2**20, 1) for name, value in peak_rss.items()},
        settled=result.settled,
    )  # fmt: skip


def merge(results: list[LoadResult]) -> LoadResult:
    """Several loads run side by side (one per relay process) seen as one."""
    out = LoadResult(concurrency=sum(r.concurrency for r in results))
    out.elapsed = max((r.elapsed for r in results), default=0.0)
    for result in results:
        out.latencies += result.latencies
        out.ttfts += result.ttfts
        out.overheads_ms += result.overheads_ms
        out.chunk_delays_ms += result.chunk_delays_ms
        out.chunk_sent_ns += result.chunk_sent_ns
        out.opened_ns += result.opened_ns
        out.errors.update(result.errors)
        out.settled += result.settled
    return out


async def run_side(targets: list[Target], plan: LoadPlan) -> LoadResult:
    if len(targets) == 1:
        return await run_load(targets[0], plan)
    share = max(plan.concurrency // len(targets), 1)
    parts = [run_load(t, replace(plan, concurrency=share)) for t in targets]
    return merge(list(await asyncio.gather(*parts)))


class Runner:
    """Runs scenarios against named sides, interleaving sides within each repeat."""

    def __init__(self, monitor: Monitor, bases: dict[str, list[str]], key: str,
                 config: BenchConfig, progress: bool = True) -> None:  # fmt: skip
        self.monitor = monitor
        self.bases = bases  # side -> base URLs (direct: the fake; relay: one or more relays)
        self.key = key
        self.config = config
        self.progress = progress
        self.records: list[RunRecord] = []

    def targets(self, scenario: Scenario, side: str) -> list[Target]:
        key = self.key if side != "direct" else "sk-upstream-bench"
        return [Target.from_url(base + scenario.path, scenario.body, key=key,
                                stream=scenario.stream) for base in self.bases[side]]  # fmt: skip

    def plan(self, scenario: Scenario, concurrency: int, *, warmup: bool = False) -> LoadPlan:
        return LoadPlan(
            concurrency=concurrency,
            duration=self.config.warmup if warmup else scenario.duration,
            per_worker=scenario.per_worker, stamps=scenario.stamps, timeout=scenario.timeout,
            keep_ids=scenario.keep_ids and not warmup, ramp=scenario.ramp,
        )  # fmt: skip

    async def run(self, scenario: Scenario, sides: tuple[str, ...] | None = None) -> None:
        sides = tuple(s for s in (sides or scenario.sides) if s in self.bases)
        waited = await self.monitor.wait_idle(("relay", "relay2", "billing", "accounts"))
        if waited > 2 and self.progress:
            print(f"  (waited {waited:.1f}s for the system to go idle)", flush=True)
        repeats = self.config.repeats if scenario.per_worker <= 0 else min(self.config.repeats, 2)
        for concurrency in scenario.concurrencies:
            if scenario.per_worker <= 0 and self.config.warmup > 0:
                for side in sides:
                    await self.warm(scenario, concurrency, side)
            for repeat in range(repeats):
                order = sides if repeat % 2 == 0 else tuple(reversed(sides))
                for side in order:
                    await self.measure(scenario, concurrency, side, repeat)

    async def warm(self, scenario: Scenario, concurrency: int, side: str) -> None:
        """The unmeasured warm-up run of one side."""
        await run_side(self.targets(scenario, side), self.plan(scenario, concurrency, warmup=True))

    async def measure(self, scenario: Scenario, concurrency: int, side: str, repeat: int) -> None:
        plan = self.plan(scenario, concurrency)
        async with self.monitor.measure() as usage:
            result = await run_side(self.targets(scenario, side), plan)
        record = _record(scenario, side, repeat, result, usage.cpu_s, usage.peak_rss)
        self.records.append(record)
        if self.progress:
            latency = record.summary["latency_ms"] or {}
            print(f"  {scenario.name:<13} c={concurrency:<5} {side:<9} #{repeat}  "
                  f"rps={record.summary['rps']:>9}  p50={latency.get('p50', '-')}ms  "
                  f"p99={latency.get('p99', '-')}ms  errors={record.summary['errors']}",
                  flush=True)  # fmt: skip
