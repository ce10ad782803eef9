"""The asyncio load generator: fixed concurrency, for a duration or a request count.

Each of `concurrency` workers holds one keep-alive connection and sends the same prepared
request back to back. It records per-request latency, time to first SSE data line, status
errors, the relay's `X-Veloera-Overhead-Ms` header and (optionally) chunk-delivery delays.
Ad hoc use: `python -m bench.load URL --concurrency 16 --duration 5 [--stream] [--key sk-...]`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson
import uvloop

from bench.client import Connection, Result, build_request
from bench.stats import summarize


@dataclass(frozen=True, slots=True)
class Target:
    """One kind of request against one server."""

    host: str
    port: int
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    stream: bool = False

    @classmethod
    def from_url(cls, url: str, body: bytes, *, key: str = "", stream: bool = False) -> Target:
        parts = urlsplit(url)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return cls(str(parts.hostname), int(parts.port or 80), parts.path, body, headers, stream)

    @property
    def raw(self) -> bytes:
        return build_request(self.host, self.port, self.path, self.body, self.headers)


@dataclass
class LoadResult:
    """Everything measured in one run (seconds unless named _ms)."""

    concurrency: int
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    overheads_ms: list[float] = field(default_factory=list)
    chunk_delays_ms: list[float] = field(default_factory=list)
    chunk_sent_ns: list[int] = field(default_factory=list)
    opened_ns: list[int] = field(default_factory=list)  # each stream's first chunk (sent)
    errors: Counter[str] = field(default_factory=Counter)
    settled: list[tuple[str, float]] = field(default_factory=list)  # (request id, wall end)

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def record(self, result: Result, stream: bool, keep_ids: bool) -> None:
        if result.error or result.status != 200:
            reason = result.error or f"HTTP {result.status}: {result.body_tail[-48:]!r}"
            self.errors[reason[:120]] += 1
            return
        if stream and b"[DONE]" not in result.body_tail:
            self.errors["stream ended without [DONE]"] += 1
            return
        self.latencies.append(result.end - result.start)
        if stream:
            self.ttfts.append(result.first - result.start)
        if result.overhead_ms is not None:
            self.overheads_ms.append(result.overhead_ms)
        self.chunk_delays_ms.extend(result.chunk_delays_ms)
        self.chunk_sent_ns.extend(result.chunk_sent_ns)
        if result.chunk_sent_ns:
            self.opened_ns.append(result.chunk_sent_ns[0])
        if keep_ids and result.request_id:
            self.settled.append((result.request_id, time.time()))

    def summary(self) -> dict[str, object]:
        return {
            "concurrency": self.concurrency,
            "requests": self.ok,
            "errors": self.error_count,
            "error_kinds": dict(self.errors.most_common(5)),
            "elapsed_s": round(self.elapsed, 3),
            "rps": round(self.rps, 1),
            "latency_ms": summarize(self.latencies, scale=1000),
            "ttft_ms": summarize(self.ttfts, scale=1000),
            "overhead_ms": summarize(self.overheads_ms),
            "chunk_delay_ms": summarize(self.chunk_delays_ms),
            "held_chunk_delay_ms": summarize(self.held_chunk_delays_ms()),
        }

    def held_chunk_delays_ms(self) -> list[float]:
        """Delays of the chunks sent once every stream was open (its first chunk sent): the
        steady state of streams held open, without the burst of stream starts."""
        if not self.opened_ns:
            return []
        all_open = max(self.opened_ns)
        return [d for d, sent in zip(self.chunk_delays_ms, self.chunk_sent_ns, strict=True)
                if sent > all_open]  # fmt: skip


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """How long to push: `duration` seconds, or `per_worker` requests each (when > 0)."""

    concurrency: int
    duration: float = 3.0
    per_worker: int = 0
    stamps: bool = False
    timeout: float = 60.0
    keep_ids: bool = False
    ramp: float = 0.0  # seconds over which the connections start (0: all at once)


async def _worker(target: Target, plan: LoadPlan, raw: bytes, deadline: float,
                  out: LoadResult, delay: float = 0.0) -> None:  # fmt: skip
    conn: Connection | None = None
    done = 0
    if delay > 0:
        await asyncio.sleep(delay)
    try:
        while time.perf_counter() < deadline and (plan.per_worker <= 0 or done < plan.per_worker):
            if conn is None or conn.lost:
                try:
                    conn = await Connection.open(target.host, target.port)
                except OSError as exc:
                    out.errors[f"connect: {exc.strerror or exc}"] += 1
                    done += 1
                    await asyncio.sleep(0.05)
                    continue
            result = await conn.request(
                raw, sse=target.stream, stamps=plan.stamps, timeout=plan.timeout
            )
            out.record(result, target.stream, plan.keep_ids)
            done += 1
    finally:
        if conn is not None:
            conn.close()


async def run_load(target: Target, plan: LoadPlan) -> LoadResult:
    """Run `plan` against `target`; the clock covers connection setup too (keep-alive after)."""
    out = LoadResult(concurrency=plan.concurrency)
    raw = target.raw
    started = time.perf_counter()
    deadline = started + (plan.duration if plan.per_worker <= 0 else 10 * plan.timeout)
    step = plan.ramp / plan.concurrency if plan.concurrency else 0.0
    workers = [_worker(target, plan, raw, deadline, out, n * step) for n in range(plan.concurrency)]
    await asyncio.gather(*workers)
    out.elapsed = time.perf_counter() - started
    return out


def chat_body(model: str, *, stream: bool = False, prompt: str = "Say hello.") -> bytes:
    payload: dict[str, object] = {
        "model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 16,
    }  # fmt: skip
    if stream:
        payload["stream"] = True
    return orjson.dumps(payload)


def anthropic_body(model: str) -> bytes:
    """The chat request as Anthropic's Messages API (what Claude Code sends)."""
    return orjson.dumps(
        {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "Say hello."}]}
    )


def gemini_body() -> bytes:
    """The chat request as Gemini's generateContent (the model is in the path)."""
    return orjson.dumps(
        {
            "contents": [{"role": "user", "parts": [{"text": "Say hello."}]}],
            "generationConfig": {"maxOutputTokens": 16},
        }
    )


def embeddings_body(model: str) -> bytes:
    return orjson.dumps({"model": model, "input": "The quick brown fox jumps over the dog."})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url", help="e.g. http://127.0.0.1:3000/v1/chat/completions")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--model", default="bench-model")
    parser.add_argument("--key", default="")
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    body = chat_body(args.model, stream=args.stream)
    target = Target.from_url(args.url, body, key=args.key, stream=args.stream)
    plan = LoadPlan(concurrency=args.concurrency, duration=args.duration)
    result = uvloop.run(run_load(target, plan))
    print(orjson.dumps(result.summary(), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
