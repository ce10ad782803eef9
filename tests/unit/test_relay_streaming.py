"""SSE relaying: line handling, usage chunks, [DONE], disconnects and idle timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from services.relay.adaptors.openai import OpenAIAdaptor
from services.relay.upstream.scrub import scrub
from services.relay.upstream.streaming import (
    DONE_FRAME,
    PING_FRAME,
    SSEProcessor,
    SSEResponse,
    completion_to_chunks,
)


def chunk(
    content: str | None = None,
    *,
    usage: dict[str, int] | None = None,
    finish: str | None = None,
    empty: bool = False,
) -> bytes:
    body: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "model": "m"}
    body["choices"] = (
        []
        if empty
        else [
            {
                "index": 0,
                "delta": {} if content is None else {"content": content},
                "finish_reason": finish,
            }
        ]
    )
    if usage is not None:
        body["usage"] = usage
    return b"data: " + orjson.dumps(body) + b"\n\n"


USAGE = {"prompt_tokens": 10, "completion_tokens": 5}
UPSTREAM = (
    chunk("Hel")
    + chunk("lo")
    + chunk(finish="stop")
    + chunk(empty=True, usage=USAGE)
    + b"data: [DONE]\n\n"
)


def frames(data: bytes) -> list[bytes]:
    return [f for f in data.split(b"\n\n") if f]


def test_forwards_data_lines_and_swallows_done() -> None:
    proc = SSEProcessor(OpenAIAdaptor(), include_usage=True)
    out = proc.feed(UPSTREAM) + proc.finish()
    assert frames(out) == frames(UPSTREAM)[:4]
    assert proc.acc.usage is not None and proc.acc.usage.completion_tokens == 5
    assert proc.acc.text_chars == 5 and proc.acc.has_text


def test_usage_only_chunk_dropped_when_client_did_not_ask() -> None:
    proc = SSEProcessor(OpenAIAdaptor(), include_usage=False)
    out = proc.feed(UPSTREAM)
    assert frames(out) == frames(UPSTREAM)[:3]
    assert proc.acc.usage is not None  # still counted for billing


def test_lines_split_across_reads_and_other_lines_ignored() -> None:
    proc = SSEProcessor(OpenAIAdaptor(), include_usage=False)
    data = b": comment\nevent: x\n" + chunk("abc").replace(b"\n\n", b"\r\n\r\n")
    out = b"".join(proc.feed(data[i : i + 7]) for i in range(0, len(data), 7)) + proc.finish()
    assert frames(out) == [chunk("abc").strip()]
    assert proc.first_at is not None


def test_trailing_line_without_newline_is_delivered() -> None:
    proc = SSEProcessor(OpenAIAdaptor(), include_usage=False)
    assert proc.feed(chunk("x").rstrip(b"\n")) == b""
    assert frames(proc.finish()) == [chunk("x").strip()]


def test_whitespace_only_reply_is_empty() -> None:
    proc = SSEProcessor(OpenAIAdaptor(), include_usage=False)
    proc.feed(chunk("  ") + chunk("\n"))
    assert not proc.acc.has_text and proc.acc.text_chars == 3


async def _pieces(parts: list[bytes], stall: float = 0.0) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
    if stall:
        await asyncio.sleep(stall)


class _Upstream:
    """An open upstream body as SSEResponse sees it: chunks as they arrive and a close hook."""

    def __init__(self, parts: list[bytes], stall: float) -> None:
        self._parts = parts
        self._stall = stall
        self.is_closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        async for part in _pieces(self._parts, self._stall):
            yield part

    def close(self) -> None:
        self.is_closed = True


def _open(parts: list[bytes], stall: float = 0.0) -> tuple[AsyncIterator[bytes], _Upstream]:
    upstream = _Upstream(parts, stall)
    return upstream.chunks(), upstream


async def _run(
    response: SSEResponse, disconnect_after: float | None = None
) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if disconnect_after is None:
            await asyncio.Event().wait()
        await asyncio.sleep(disconnect_after or 0)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await response({"type": "http"}, receive, send)  # type: ignore[arg-type]
    return sent


async def test_response_ends_with_one_done_and_reports_completion() -> None:
    chunks, upstream = _open([UPSTREAM[:50], UPSTREAM[50:]])
    finished: list[bool] = []
    proc = SSEProcessor(OpenAIAdaptor(), include_usage=False)
    response = SSEResponse(
        chunks,
        upstream.close,
        proc,
        headers={"X-Veloera-Request-Id": "r1"},
        on_finish=lambda p, interrupted: finished.append(interrupted),
    )
    sent = await _run(response)
    body = b"".join(m.get("body", b"") for m in sent)
    assert sent[0]["status"] == 200
    assert (b"x-veloera-request-id", b"r1") in sent[0]["headers"]
    assert body.endswith(DONE_FRAME) and body.count(b"[DONE]") == 1
    assert sent[-1]["more_body"] is False
    assert finished == [False]
    assert upstream.is_closed


async def test_client_disconnect_closes_upstream_and_settles_interrupted() -> None:
    chunks, upstream = _open([chunk("Hi")], stall=30)
    finished: list[bool] = []
    proc = SSEProcessor(OpenAIAdaptor(), include_usage=False)
    response = SSEResponse(
        chunks,
        upstream.close,
        proc,
        headers={},
        on_finish=lambda p, interrupted: finished.append(interrupted),
    )
    await asyncio.wait_for(_run(response, disconnect_after=0.05), 5)
    assert finished == [True]
    assert upstream.is_closed
    assert proc.acc.text_chars == 2


async def test_synthetic_usage_tail_is_sent_before_done() -> None:
    chunks, upstream = _open([chunk("Hi") + chunk(finish="stop")])
    proc = SSEProcessor(OpenAIAdaptor(), include_usage=True)
    response = SSEResponse(
        chunks,
        upstream.close,
        proc,
        headers={},
        on_finish=lambda p, i: None,
        tail=lambda p: b'data: {"usage":1}\n\n',
    )
    sent = await _run(response)
    assert sent[-1]["body"] == b'data: {"usage":1}\n\n' + DONE_FRAME


def test_thinking_to_content_wraps_reasoning_in_think_tags() -> None:
    def delta_chunk(**delta: str) -> bytes:
        body = {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        return b"data: " + orjson.dumps(body) + b"\n\n"

    proc = SSEProcessor(OpenAIAdaptor(), include_usage=False, thinking_to_content=True)
    out = proc.feed(
        delta_chunk(reasoning_content="a")
        + delta_chunk(reasoning_content="b")
        + delta_chunk(content="c")
    )
    texts = [orjson.loads(f[6:])["choices"][0]["delta"] for f in frames(out)]
    assert texts == [{"content": "<think>\na"}, {"content": "b"}, {"content": "\n</think>\nc"}]
    assert proc.acc.text == "abc"  # billing counts what the upstream produced


def test_force_format_keeps_only_openai_fields() -> None:
    raw = {
        "id": "c",
        "model": "m",
        "vendor_extra": 1,
        "choices": [{"index": 0, "delta": {"content": "x", "weird": 2}, "junk": 3}],
    }
    proc = SSEProcessor(OpenAIAdaptor(), include_usage=False, force_format=True)
    [frame] = frames(proc.feed(b"data: " + orjson.dumps(raw) + b"\n\n"))
    assert orjson.loads(frame[6:]) == {
        "id": "c",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "x"}}],
    }


def test_completion_re_emitted_as_chunks() -> None:
    reply = {
        "id": "x",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "tool_calls": [{"id": "t"}]},
                "finish_reason": "tool_calls",
            }
        ],
        "usage": USAGE,
    }
    out = frames(completion_to_chunks(reply, include_usage=True))
    first, finish, usage = (orjson.loads(f[6:]) for f in out)
    assert first["choices"][0]["delta"]["tool_calls"] == [{"index": 0, "id": "t"}]
    assert finish["choices"][0]["finish_reason"] == "tool_calls"
    assert usage["usage"] == USAGE and usage["choices"] == []
    assert len(frames(completion_to_chunks(reply, include_usage=False))) == 2


async def test_pings_fill_quiet_gaps_and_initial_frames_go_first() -> None:
    chunks, upstream = _open([chunk("b")], stall=0.35)
    proc = SSEProcessor(OpenAIAdaptor(), include_usage=False)
    response = SSEResponse(
        chunks,
        upstream.close,
        proc,
        headers={},
        on_finish=lambda p, i: None,
        ping_seconds=0.1,
        initial=chunk("a"),
    )
    sent = await _run(response)
    body = b"".join(m.get("body", b"") for m in sent)
    assert body.startswith(chunk("a") + chunk("b"))
    assert PING_FRAME in body
    assert body.endswith(DONE_FRAME) and sent[-1]["more_body"] is False
    assert all(m.get("more_body", True) for m in sent[1:-1])


@pytest.mark.parametrize(
    "error", [TimeoutError(), aiohttp.ClientPayloadError("broken"), ConnectionResetError()]
)
async def test_upstream_breaking_off_ends_the_stream_and_bills_it_as_interrupted(
    error: BaseException,
) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield chunk("Hi")
        raise error

    closed: list[bool] = []
    finished: list[bool] = []
    proc = SSEProcessor(OpenAIAdaptor(), include_usage=False)
    response = SSEResponse(
        broken(),
        lambda: closed.append(True),
        proc,
        headers={},
        on_finish=lambda p, interrupted: finished.append(interrupted),
    )
    sent = await _run(response)
    body = b"".join(m.get("body", b"") for m in sent)
    # what came is kept, then an error event the SDKs raise on, then the end
    assert body.startswith(chunk("Hi")) and body.endswith(DONE_FRAME)
    error_frame = body[len(chunk("Hi")) : -len(DONE_FRAME)]
    sent_error = orjson.loads(error_frame.removeprefix(b"data: "))["error"]
    assert sent_error["code"] == "stream_broken" and "broke off" in sent_error["message"]
    assert finished == [True] and closed == [True]
    assert proc.acc.text_chars == 2


async def test_an_error_the_upstream_streams_is_passed_on_scrubbed() -> None:
    leak = 'data: {"error": {"message": "key sk-live-SECRET rejected by http://10.0.0.7:8000"}}\n\n'
    proc = SSEProcessor(
        OpenAIAdaptor(),
        include_usage=False,
        scrub=lambda text: scrub(text, ["sk-live-SECRET"]),
    )
    frames = proc.feed(chunk("Hi") + leak.encode())
    assert frames.startswith(chunk("Hi"))
    error = orjson.loads(frames[len(chunk("Hi")) :].removeprefix(b"data: "))["error"]
    assert "sk-live-SECRET" not in error["message"] and "10.0.0.7" not in error["message"]
    assert "rejected" in error["message"]
