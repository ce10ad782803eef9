"""The `routing-scale` scenario (issue 20): a large routing table, edited while under load.

It adds `channels` channels (3 keys each, 100 models each, none of them the bench model) straight
into accounts' tables and bumps the routing version, so every relay loads them as it would after
a restart. Then chat at each concurrency runs direct, through the relay, and through the relay
while an admin edits a random one of those channels twice a second through the console API
(each edit: SaveChannel, its 100 abilities rebuilt, a change event, every relay updating). It
prints the relay's throughput, p99 and max latency, and what it adds to the direct run, with
and without the edits, plus the relay's memory holding that table.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import psutil

from bench.load import chat_body
from bench.report import added
from bench.scenarios import CHAT, BenchConfig, Runner, RunRecord, Scenario
from bench.stack import MODEL, Stack
from services.shared.crypto import SecretBox
from tests.support.helpers import Console, root_console

NAME = "routing-scale"
MODELS_PER_CHANNEL = 100
KEYS_PER_CHANNEL = 3
EDITS_PER_SECOND = 2.0
LEVELS = (1, 64)
SIDES = ("direct", "relay", "relay+edits")
LOAD_TIMEOUT = 180.0  # seconds for the relay to hold the large table
APPLY = re.compile(
    r'^veloera_relay_routing_apply_seconds_(count|sum|bucket\{le="0\.005"\}) (\S+)$', re.M
)

INSERT_CHANNELS = """
INSERT INTO accounts.channels (type, name, base_url, models, groups, weight, created_time)
SELECT 1, 'scale-' || n, $1, $2::text[], ARRAY['default'], n % 7, $3
FROM generate_series(1, $4) AS n
RETURNING id
"""
INSERT_ABILITIES = """
INSERT INTO accounts.abilities ("group", model, channel_id, priority, weight, enabled)
SELECT 'default', m, c.id, 0, c.weight, true
FROM accounts.channels c CROSS JOIN unnest($1::text[]) AS m
WHERE c.id = ANY($2::bigint[])
"""
# No routing_changes row: relays see a version they have no delta for and take the snapshot.
BUMP = "UPDATE accounts.routing_state SET version = version + 1 WHERE id = 1"


def scale_models() -> list[str]:
    return [f"scale-model-{i}" for i in range(MODELS_PER_CHANNEL)]


async def provision(stack: Stack, channels: int) -> list[int]:
    """Insert the channels, their keys and abilities in one transaction; return their ids."""
    box = SecretBox(stack.env["CRYPTO_SECRET"])
    conn = await asyncpg.connect(stack.database_url)
    try:
        async with conn.transaction():
            rows = await conn.fetch(
                INSERT_CHANNELS, stack.fake.url, scale_models(), int(time.time()), channels
            )
            ids = [int(row["id"]) for row in rows]
            keys = []
            for cid in ids:
                for idx in range(KEYS_PER_CHANNEL):
                    plain = f"sk-scale-{cid}-{idx}"
                    keys.append((cid, idx, box.encrypt(plain), box.lookup_hash(plain)))
            await conn.copy_records_to_table(
                "channel_keys", schema_name="accounts", records=keys,
                columns=["channel_id", "idx", "key_enc", "key_hash"],
            )  # fmt: skip
            await conn.execute(INSERT_ABILITIES, scale_models(), ids)
            await conn.execute(BUMP)
    finally:
        await conn.close()
    return ids


async def wait_for_table(stack: Stack, timeout: float = LOAD_TIMEOUT) -> float:
    """Seconds until the relay lists the large table's models (polls /v1/models)."""
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {stack.key}"}
    wanted = scale_models()[-1]
    async with httpx.AsyncClient(timeout=30.0) as client:
        while time.monotonic() - started < timeout:
            with contextlib.suppress(httpx.HTTPError):
                reply = await client.get(f"{stack.relay_url}/v1/models", headers=headers)
                if reply.status_code == 200 and any(
                    item.get("id") == wanted for item in reply.json().get("data", [])
                ):
                    return time.monotonic() - started
            await asyncio.sleep(0.5)
    raise RuntimeError(f"the relay did not load {NAME}'s channels within {timeout}s")


@dataclass
class Editor:
    """Edits a random one of `ids` (its weight) every 1/EDITS_PER_SECOND seconds."""

    root: Console
    ids: list[int]
    done: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self._loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        interval = 1.0 / EDITS_PER_SECOND
        while True:
            started = time.monotonic()
            body = {"id": random.choice(self.ids), "weight": random.randrange(0, 50)}
            try:
                await self.root.call("PUT", "/api/channel/", json=body)
                self.done += 1
            except Exception as exc:  # counted and shown: the bench reports, never stops
                self.failed += 1
                self.errors = [*self.errors[-4:], repr(exc)[:160]]
            await asyncio.sleep(max(interval - (time.monotonic() - started), 0.0))


async def apply_stats(relay_url: str) -> dict[str, float]:
    """The relay's delta histogram: count, sum (s), and how many took at most 5 ms."""
    async with httpx.AsyncClient(timeout=10.0) as client:
        text = (await client.get(relay_url + "/metrics")).text
    found = {name.split("{")[0]: float(value) for name, value in APPLY.findall(text)}
    return {"count": found.get("count", 0.0), "sum": found.get("sum", 0.0),
            "within_5ms": found.get("bucket", 0.0)}  # fmt: skip


def _apply_summary(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    count = after["count"] - before["count"]
    if count <= 0:
        return {"deltas": 0, "note": "no veloera_relay_routing_apply_seconds on this relay"}
    return {
        "deltas": int(count),
        "mean_ms": round((after["sum"] - before["sum"]) * 1000 / count, 3),
        "within_5ms": int(after["within_5ms"] - before["within_5ms"]),
    }


def _rss_mb(pid: int) -> float:
    rss: int = psutil.Process(pid).memory_info().rss
    return round(rss / 2**20, 1)


async def run(runner: Runner, stack: Stack, config: BenchConfig, channels: int) -> dict[str, Any]:
    """Provision, measure each level on every side (edits only on `relay+edits`), report."""
    relay_pid = stack.pids()["relay"]
    before_mb = _rss_mb(relay_pid)
    started = time.monotonic()
    ids = await provision(stack, channels)
    inserted_s = time.monotonic() - started
    loaded_s = await wait_for_table(stack)
    after_mb = _rss_mb(relay_pid)
    print(f"  {channels} channels x {MODELS_PER_CHANNEL} models x {KEYS_PER_CHANNEL} keys: "
          f"inserted in {inserted_s:.1f}s, relay listed them {loaded_s:.1f}s later; relay RSS "
          f"{before_mb} -> {after_mb} MB", flush=True)  # fmt: skip
    levels = tuple(c for c in config.concurrencies if c in LEVELS) or config.concurrencies[:1]
    scenario = Scenario(NAME, CHAT, chat_body(MODEL), concurrencies=levels,
                        duration=config.duration, sides=SIDES)  # fmt: skip
    runner.bases["relay+edits"] = runner.bases["relay"]
    root = await root_console(stack.web_url)
    editor = Editor(root, ids)
    applied = await apply_stats(stack.relay_url)
    try:
        await _measure(runner, scenario, editor, config)
    finally:
        runner.bases.pop("relay+edits", None)
        await root.aclose()
    deltas = _apply_summary(applied, await apply_stats(stack.relay_url))
    records = [r for r in runner.records if r.scenario == NAME]
    result = {
        "channels": channels, "models_per_channel": MODELS_PER_CHANNEL,
        "keys_per_channel": KEYS_PER_CHANNEL, "edits_per_second": EDITS_PER_SECOND,
        "relay_rss_mb": {"before": before_mb, "loaded": after_mb, "end": _rss_mb(relay_pid)},
        "load_seconds": round(loaded_s, 1), "edits": editor.done, "edit_errors": editor.failed,
        "edit_error_kinds": editor.errors, "delta_apply": deltas,
        "rows": summarize(records, levels),
    }  # fmt: skip
    print(render(result), flush=True)
    return result


async def _measure(runner: Runner, scenario: Scenario, editor: Editor, config: BenchConfig) -> None:
    for concurrency in scenario.concurrencies:
        for side in scenario.sides:  # warm-up, unmeasured
            await _run(runner, scenario, editor, concurrency, side, repeat=-1, warm=True)
        for repeat in range(config.repeats):
            order = scenario.sides if repeat % 2 == 0 else tuple(reversed(scenario.sides))
            for side in order:
                await _run(runner, scenario, editor, concurrency, side, repeat)


async def _run(runner: Runner, scenario: Scenario, editor: Editor, concurrency: int, side: str,
               repeat: int, warm: bool = False) -> None:  # fmt: skip
    edits = editor.running() if side == "relay+edits" else contextlib.nullcontext()
    async with edits:
        if warm:
            await runner.warm(scenario, concurrency, side)
        else:
            await runner.measure(scenario, concurrency, side, repeat)


def summarize(records: list[RunRecord], levels: tuple[int, ...]) -> list[dict[str, Any]]:
    """Per level and relay side: medians over repeats, and what each adds to the direct run."""
    rows = []
    for concurrency in levels:
        at = [r for r in records if r.concurrency == concurrency]
        direct = [r for r in at if r.side == "direct"]
        for side in SIDES[1:]:
            runs = [r for r in at if r.side == side]
            if not runs:
                continue
            rows.append({
                "concurrency": concurrency, "side": side,
                "rps": _median([float(r.summary["rps"]) for r in runs]),
                "p99": _median([_latency(r, "p99") for r in runs]),
                "max": _median([_latency(r, "max") for r in runs]),
                "added_p99": added(runs, direct, "latency_ms", "p99"),
                "added_max": added(runs, direct, "latency_ms", "max"),
                "errors": sum(int(r.summary["errors"]) for r in runs),
            })  # fmt: skip
    return rows


def _latency(record: RunRecord, pct: str) -> float:
    latency: dict[str, float] = record.summary.get("latency_ms") or {}
    return float(latency.get(pct, 0.0))


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    value = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return round(value, 3)


def render(result: dict[str, Any]) -> str:
    rss = result["relay_rss_mb"]
    lines = [
        f"{NAME}: {result['channels']} channels x {result['models_per_channel']} models x "
        f"{result['keys_per_channel']} keys, {result['edits_per_second']:g} edits/s during "
        f"relay+edits ({result['edits']} edits, {result['edit_errors']} failed); relay RSS "
        f"{rss['before']} MB empty, {rss['loaded']} MB loaded, {rss['end']} MB at the end",
        f"  {'c':>4} {'side':<12} {'rps':>9} {'p99 ms':>8} {'max ms':>8} {'+p99 ms':>8} "
        f"{'+max ms':>8} {'err':>4}",
    ]
    for row in result["rows"]:
        lines.append(
            f"  {row['concurrency']:>4} {row['side']:<12} {row['rps']:>9} {row['p99']:>8} "
            f"{row['max']:>8} {row['added_p99']!s:>8} {row['added_max']!s:>8} {row['errors']:>4}"
        )
    for level in sorted({row["concurrency"] for row in result["rows"]}):
        plain, edited = (
            next((r for r in result["rows"] if r["concurrency"] == level and r["side"] == s), None)
            for s in SIDES[1:]
        )
        if plain and edited and plain["rps"]:
            lines.append(f"  c={level}: edits keep {edited['rps'] / plain['rps']:.0%} of the "
                         f"throughput; p99 {plain['p99']} -> {edited['p99']} ms, max "
                         f"{plain['max']} -> {edited['max']} ms")  # fmt: skip
    deltas = result["delta_apply"]
    if deltas.get("deltas"):
        lines.append(f"  relay event-loop time per delta: {deltas['mean_ms']} ms mean over "
                     f"{deltas['deltas']} deltas, {deltas['within_5ms']} within 5 ms")  # fmt: skip
    else:
        lines.append(f"  relay deltas: {deltas.get('note', 'none')}")
    if result["edit_error_kinds"]:
        lines.append(f"  edit errors: {result['edit_error_kinds']}")
    return "\n".join(lines)
