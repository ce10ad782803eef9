"""`python -m bench.profile`: py-spy the relay and billing under non-stream chat load and print
where their time goes (inclusive share of samples per frame, top entries), for bench/PROFILE.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import uvloop

from bench.load import LoadPlan, Target, chat_body, run_load
from bench.monitor import Monitor
from bench.stack import MODEL, FakeProcess, Stack
from services.cli.infra import free_port

PY_SPY = Path(sys.executable).with_name("py-spy")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=int, default=12, help="seconds sampled")
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--services", default="relay,billing")
    parser.add_argument("--no-leases", action="store_true",
                        help="BILLING_LEASES=false: one Reserve per request")  # fmt: skip
    return parser.parse_args()


def _module(frame: str) -> str:
    """`func (path/to/file.py:12)` -> the package-ish part of the path."""
    _, _, where = frame.rpartition(" (")
    path = where.split(":")[0]
    for marker in ("site-packages/", "python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    parts = path.split("/")
    return "/".join(parts[:2]) if parts[0] in ("services", "grpc", "asyncpg") else parts[0]


Shares = list[tuple[float, str]]


def summarise(raw: Path, top: int) -> tuple[Shares, Shares, Shares]:
    """(inclusive share per frame under 60 %, self share per module, self share per function)
    of the busy samples."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if len(frames) < 2 or "idle" in frames[-1].lower():
            continue
        total += n
        own[_module(frames[-1])] += n
        functions[frames[-1]] += n
        for frame in set(frames[1:]):  # the first frame is the process/thread
            inclusive[frame] += n
    if total == 0:
        return [], [], []
    shares = [(100.0 * n / total, f) for f, n in inclusive.most_common() if n / total < 0.6]
    return (
        shares[:top],
        [(100.0 * n / total, m) for m, n in own.most_common(top)],
        [(100.0 * n / total, f) for f, n in functions.most_common(top)],
    )


def spy(pid: int, out: Path, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    command = [str(PY_SPY), "record", "-p", str(pid), "-d", str(args.duration),
               "-r", str(args.rate), "-f", "raw", "-o", str(out), "--nonblocking"]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def run(args: argparse.Namespace) -> None:
    fake = FakeProcess(free_port(), ["--chunks", "16"])
    stack = Stack(fake, log_level="WARNING")
    fake.start(stack.work_dir / "fake.log")
    try:
        await stack.start()
        await stack.provision()
        target = Target.from_url(
            f"{stack.relay_url}/v1/chat/completions", chat_body(MODEL), key=stack.key
        )
        await run_load(target, LoadPlan(concurrency=args.concurrency, duration=2.0))
        names = args.services.split(",")
        pids = {name: stack.pids()[name] for name in names}
        outs = {name: stack.work_dir / f"{name}.pyspy.txt" for name in names}
        spies = [spy(pid, outs[name], args) for name, pid in pids.items()]
        async with Monitor(pids).measure() as usage:
            result = await run_load(
                target, LoadPlan(concurrency=args.concurrency, duration=float(args.duration))
            )
        for process in spies:
            await asyncio.to_thread(process.wait)
        print(f"chat c={args.concurrency}: {result.rps:.1f} rps, {result.ok} ok, "
              f"{result.error_count} errors")  # fmt: skip
        for name in names:
            cpu = usage.cpu_s[name] * 1000 / max(result.ok, 1)
            print(f"\n## {name}: {cpu:.2f} ms CPU per request (sampled run, py-spy attached)")
            inclusive, own, functions = summarise(outs[name], args.top)
            print("inclusive (frames under 60 %):")
            for share, frame in inclusive:
                print(f"{share:6.1f} %  {frame}")
            print("self time by module:")
            for share, module in own:
                print(f"{share:6.1f} %  {module}")
            print("self time by function:")
            for share, function in functions:
                print(f"{share:6.1f} %  {function}")
    finally:
        await asyncio.to_thread(stack.stop)
        fake.stop()


def main() -> None:
    args = parse_args()
    if args.no_leases:  # the services inherit this environment
        os.environ["BILLING_LEASES"] = "false"
    uvloop.run(run(args))


if __name__ == "__main__":
    main()
