"""`python -m bench [--quick]`: start everything, run the scenarios, print the table, write JSON."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import resource
import subprocess
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvloop

from bench import routing_scale
from bench.ledger import check_ledger, settlement_lag
from bench.load import LoadPlan, Target, chat_body, run_load
from bench.monitor import Monitor
from bench.plot import write_plot
from bench.report import aggregate, rss_table, table
from bench.scenarios import CHAT, BenchConfig, Runner, build_scenarios
from bench.stack import EMBED_MODEL, MODEL, FakeProcess, Stack
from services.cli.infra import free_port
from services.shared import internal_auth

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="each scenario briefly, 1 repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measured run")
    parser.add_argument("--concurrency", default="1,16,64,256", help="comma-separated levels")
    parser.add_argument("--scenarios", default="", help="comma-separated subset of scenarios")
    parser.add_argument("--slow-streams", type=int, default=1000)
    parser.add_argument("--first-delay-ms", type=float, default=0.0, help="fake: before 1st byte")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="fake: between chunks")
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of our services")
    parser.add_argument("--direct-only", action="store_true", help="no system: fake only")
    parser.add_argument("--no-workers", action="store_true", help="skip the 2-relay comparison")
    parser.add_argument("--scale-channels", type=int, default=5000,
                        help="routing-scale: channels (100 models, 3 keys; 0: skip)")  # fmt: skip
    parser.add_argument("--no-leases", action="store_true",
                        help="BILLING_LEASES=false: one Reserve per request")  # fmt: skip
    return parser.parse_args()


def config_from(args: argparse.Namespace) -> BenchConfig:
    levels = tuple(int(c) for c in args.concurrency.split(",") if c.strip())
    if args.quick:
        return BenchConfig(repeats=1, duration=1.0, warmup=0.2,
                           concurrencies=tuple(c for c in levels if c <= 16) or (1,),
                           slow_streams=min(args.slow_streams, 100), slow_chunks=3)  # fmt: skip
    return BenchConfig(repeats=args.repeats, duration=args.duration, concurrencies=levels,
                       slow_streams=args.slow_streams)  # fmt: skip


def raise_fd_limit() -> None:
    """1,000 held streams need ~4,000 sockets across our processes (children inherit this)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def fake_ceiling(fake: FakeProcess, monitor: Monitor, seconds: float) -> dict[str, Any]:
    """The fake's own ceiling: non-stream chat straight at it, c=64 (bounded by the load gen)."""
    target = Target.from_url(fake.url + CHAT, chat_body(MODEL))
    async with monitor.measure() as usage:
        result = await run_load(target, LoadPlan(concurrency=64, duration=seconds))
    served = max(result.ok, 1)
    return {
        "rps": round(result.rps, 1), "errors": result.error_count,
        "fake_cpu_ms_per_request": round(usage.cpu_s.get("fake", 0.0) * 1000 / served, 4),
        "loadgen_cpu_ms_per_request": round(usage.cpu_s.get("loadgen", 0.0) * 1000 / served, 4),
    }  # fmt: skip


async def relay_supports(url: str, key: str, path: str, body: bytes) -> tuple[bool, str]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        reply = await client.post(url + path, content=body, headers={
            "Authorization": f"Bearer {key}", "Content-Type": "application/json"})  # fmt: skip
    return reply.status_code == 200, f"HTTP {reply.status_code}: {reply.text[:160]}"


def meta() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()  # fmt: skip
    except OSError:
        commit = ""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": commit, "machine": platform.machine(), "cpus": os.cpu_count(),
        "processor": platform.processor(), "python": platform.python_version(),
        "billing_leases": os.environ.get("BILLING_LEASES", "true"),
    }  # fmt: skip


async def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    config = config_from(args)
    fake = FakeProcess(free_port(), [
        "--first-delay-ms", str(args.first_delay_ms), "--chunk-delay-ms", str(args.chunk_delay_ms),
        "--chunks", "16", "--slow-chunks", str(config.slow_chunks),
        "--slow-interval-ms", str(config.slow_interval * 1000)])  # fmt: skip
    stack = Stack(fake, log_level=args.log_level)
    out: dict[str, Any] = {"meta": meta(), "config": asdict(config), "notes": []}
    fake.start(stack.work_dir / "fake.log")
    try:
        return await _with_fake(args, config, fake, stack, out)
    finally:
        print("stopping the system ...", flush=True)
        await asyncio.to_thread(stack.stop)
        fake.stop()


async def _with_fake(args: argparse.Namespace, config: BenchConfig, fake: FakeProcess,
                     stack: Stack, out: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    pids = {"fake": fake.proc.pid} if fake.proc is not None else {}
    out["fake_ceiling"] = await fake_ceiling(fake, Monitor(pids), 1.0 if args.quick else 2.0)
    print(f"fake upstream ceiling (direct, c=64, bounded by the load generator): "
          f"{out['fake_ceiling']}", flush=True)  # fmt: skip
    bases: dict[str, list[str]] = {"direct": [fake.url]}
    if not args.direct_only:
        print(f"starting the system in {stack.work_dir} ...", flush=True)
        try:
            await stack.start()
            await stack.provision()
            bases["relay"] = [stack.relay_url]
        except Exception as exc:  # report and continue direct-only: the harness still runs
            out["notes"].append(f"system did not start end to end: {exc!r}"[:2000])
            print(f"SYSTEM NOT AVAILABLE, running direct only: {exc!r}"[:2000], flush=True)
    monitor = Monitor({**pids, **stack.pids()})
    embeddings = False
    if "relay" in bases:
        from bench.load import embeddings_body

        embeddings, why = await relay_supports(stack.relay_url, stack.key, "/v1/embeddings",
                                               embeddings_body(EMBED_MODEL))  # fmt: skip
        if not embeddings:
            out["notes"].append(f"embeddings through the relay: not supported yet ({why})")
            print(f"embeddings through the relay: not supported yet ({why})", flush=True)
    runner = Runner(monitor, bases, stack.key, config)
    wanted = {s for s in args.scenarios.split(",") if s}
    scenarios = [s for s in build_scenarios(config, embeddings) if not wanted or s.name in wanted]
    held = [s for s in scenarios if s.per_worker > 0]  # slow streams last: they linger
    for scenario in [s for s in scenarios if s.per_worker <= 0]:
        print(f"scenario {scenario.name} ...", flush=True)
        await runner.run(scenario)
    if "relay" in bases and not args.no_workers and (not wanted or "chat" in wanted):
        await _two_relays(runner, stack, monitor, config, scenarios)
    for scenario in held:
        print(f"scenario {scenario.name} ...", flush=True)
        await runner.run(scenario)
    if "relay" in bases and _wants_scale(args, wanted):
        print(f"scenario {routing_scale.NAME} ...", flush=True)
        out["routing_scale"] = await routing_scale.run(runner, stack, config, args.scale_channels)
    if "relay" in bases:
        out["billing"] = await _billing(runner, stack)
    rows = aggregate(runner.records)
    out["rows"] = rows
    out["peak_rss_mb"] = {k: round(v / 2**20, 1) for k, v in monitor.overall_peak.items()}
    out["runs"] = [{**asdict(r), "settled": len(r.settled)} for r in runner.records]
    out["notes"].append(write_plot(rows, RESULTS / "latency.png"))
    print()
    print(table(rows))
    print()
    print(rss_table(monitor.overall_peak))
    return out


def _wants_scale(args: argparse.Namespace, wanted: set[str]) -> bool:
    """Last (its channels stay): in the full run, or when named; not in --quick unless named."""
    if args.scale_channels <= 0:
        return False
    return routing_scale.NAME in wanted or (not wanted and not args.quick)


async def _two_relays(runner: Runner, stack: Stack, monitor: Monitor, config: BenchConfig,
                      scenarios: list[Any]) -> None:  # fmt: skip
    chat = next((s for s in scenarios if s.name == "chat"), None)
    if chat is None:
        return
    print("scenario chat-workers (1 vs 2 relay processes) ...", flush=True)
    second = await stack.start_extra_relay()
    try:
        await stack.wait_for_model(second)
        monitor.add("relay2", stack.pids()["relay2"])
        runner.bases["relay-x2"] = [stack.relay_url, second]
        level = max(c for c in config.concurrencies if c <= 64) if config.concurrencies else 64
        workers = replace(chat, name="chat-workers", concurrencies=(level,), keep_ids=False,
                          sides=("direct", "relay", "relay-x2"))  # fmt: skip
        await runner.run(workers)
    finally:
        runner.bases.pop("relay-x2", None)
        await asyncio.to_thread(stack.stop_child, "relay2")


async def _billing(runner: Runner, stack: Stack) -> dict[str, Any]:
    print("billing: waiting for settlements, then CheckLedger ...", flush=True)
    chat = [r for r in runner.records if r.scenario == "chat" and r.side == "relay"]
    busiest = max(chat, key=lambda r: float(r.summary["rps"]), default=None)
    lag: dict[str, Any] = {"note": "no relay chat run"}
    if busiest is not None:
        lag = await settlement_lag(stack.database_url, busiest.settled)
        lag["run"] = f"chat c={busiest.concurrency} #{busiest.repeat}, {busiest.summary['rps']} rps"
    admin_token = stack.env[internal_auth.token_variable(internal_auth.ADMIN)]
    ledger = await check_ledger(stack.env["BILLING_ADDR"], admin_token)
    print(f"ledger: {ledger}\nsettlement lag: {lag}", flush=True)
    return {"ledger": ledger, "settlement_lag": lag}


def main() -> None:
    args = parse_args()
    raise_fd_limit()
    if args.no_leases:  # the services inherit the bench's environment
        os.environ["BILLING_LEASES"] = "false"
    result = uvloop.run(run_bench(args))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "latest.json"
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    for note in result["notes"]:
        print(f"note: {note}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
