"""A minimal, cheap HTTP/1.1 keep-alive client protocol for the load generator (no httpx cost).

It sends prepared request bytes and parses the response: Content-Length or chunked bodies,
the `X-Veloera-Overhead-Ms` / `X-Veloera-Request-Id` headers, the arrival of the first SSE
`data:` line (time to first token) and, optionally, the `t=<monotonic ns>` stamps the fake
upstream puts in each stream chunk (chunk-delivery delay).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import cast

_STAMP_RE = re.compile(rb"t=(\d+)")


@dataclass(slots=True)
class Result:
    """One response, timed with time.perf_counter() (seconds)."""

    status: int = 0
    start: float = 0.0
    first: float = 0.0  # first SSE data line (streams) or first body byte
    end: float = 0.0
    overhead_ms: float | None = None
    request_id: str = ""
    error: str = ""
    body_tail: bytes = b""
    chunk_delays_ms: list[float] = field(default_factory=list)
    chunk_sent_ns: list[int] = field(default_factory=list)  # the fake's send stamp of each


def build_request(
    host: str, port: int, path: str, body: bytes, headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
             f"Content-Length: {len(body)}"]  # fmt: skip
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self._future: asyncio.Future[Result] | None = None
        self._result = Result()
        self._reset_parser()

    def _reset_parser(self) -> None:
        self._buffer = b""
        self._headers_done = False
        self._length = -1  # content-length, -1 when chunked
        self._chunked = False
        self._received = 0
        self._sse = False
        self._stamps = False
        self._events = b""

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(cls, host, port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._future is not None and not self._future.done():
            self._result.error = f"connection lost: {exc or 'closed by peer'}"
            self._result.end = time.perf_counter()
            self._future.set_result(self._result)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def request(
        self, raw: bytes, *, sse: bool = False, stamps: bool = False, timeout: float = 60.0
    ) -> Result:
        assert self.transport is not None and self._future is None
        loop = asyncio.get_running_loop()
        self._reset_parser()
        self._sse, self._stamps = sse, stamps
        self._result = Result(start=time.perf_counter())
        future: asyncio.Future[Result] = loop.create_future()
        self._future = future
        timer = loop.call_later(timeout, self._timed_out)
        self.transport.write(raw)
        try:
            return await future
        finally:
            timer.cancel()
            self._future = None

    def _timed_out(self) -> None:
        if self._future is not None and not self._future.done():
            self._result.error = "timeout"
            self._result.end = time.perf_counter()
            self._future.set_result(self._result)
            self.close()

    def data_received(self, data: bytes) -> None:
        if self._future is None or self._future.done():
            return
        if not self._headers_done:
            self._buffer += data
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self._parse_head(self._buffer[:end])
            data, self._buffer = self._buffer[end + 4 :], b""
        if self._chunked:
            self._buffer += data
            self._dechunk()
        else:
            self._body(data)
            if self._received >= self._length:
                self._finish()

    def _parse_head(self, head: bytes) -> None:
        self._headers_done = True
        lines = head.split(b"\r\n")
        self._result.status = int(lines[0].split(b" ", 2)[1])
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            if key == b"content-length":
                self._length = int(value)
            elif key == b"transfer-encoding" and b"chunked" in value.lower():
                self._chunked = True
            elif key == b"x-veloera-overhead-ms":
                self._result.overhead_ms = float(value)
            elif key == b"x-veloera-request-id":
                self._result.request_id = value.strip().decode()
        if not self._chunked and self._length < 0:
            self._length = 0

    def _dechunk(self) -> None:
        buffer = self._buffer
        while True:
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                break
            size = int(buffer[:line_end].split(b";", 1)[0], 16)
            if size == 0:
                if len(buffer) >= line_end + 4:
                    self._buffer = b""
                    self._finish()
                    return
                break
            if len(buffer) < line_end + 2 + size + 2:
                break
            self._body(buffer[line_end + 2 : line_end + 2 + size])
            buffer = buffer[line_end + 2 + size + 2 :]
        self._buffer = buffer

    def _body(self, data: bytes) -> None:
        if not data:
            return
        result = self._result
        self._received += len(data)
        if result.first == 0.0 and (not self._sse or b"data:" in data):
            result.first = time.perf_counter()
        if self._stamps:
            self._collect_stamps(data)
        result.body_tail = (result.body_tail + data)[-64:]

    def _collect_stamps(self, data: bytes) -> None:
        now = time.monotonic_ns()
        self._events += data
        events = self._events.split(b"\n\n")
        self._events = events.pop()
        for event in events:
            found = _STAMP_RE.search(event)
            if found:
                sent = int(found.group(1))
                self._result.chunk_delays_ms.append((now - sent) / 1e6)
                self._result.chunk_sent_ns.append(sent)

    def _finish(self) -> None:
        self._result.end = time.perf_counter()
        if self._result.first == 0.0:
            self._result.first = self._result.end
        assert self._future is not None
        self._future.set_result(self._result)
