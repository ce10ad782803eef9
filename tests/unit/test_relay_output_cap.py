"""A stream is cut where its output reaches the tokens the hold covers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from services.relay.adaptors.base import StreamAccumulator, UsageCounts
from services.relay.adaptors.openai import OpenAIAdaptor
from services.relay.metering import output_cap
from services.relay.metering.output_cap import OutputCap, cut_frames
from services.relay.metering.tokenizer import count_text
from services.relay.upstream.streaming import DONE_FRAME, SSEProcessor, SSEResponse

MODEL = "gpt-4o-mini"
BILLED = UsageCounts(prompt_tokens=7, completion_tokens=16)


def chunk(content: str) -> bytes:
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": None}
    body = {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [choice]}
    return b"data: " + orjson.dumps(body) + b"\n\n"


def words(count: int) -> list[bytes]:
    return [chunk(f" w{i}") for i in range(count)]


def test_the_cap_is_reached_at_the_capped_token_count() -> None:
    cap, acc = OutputCap(16, MODEL), StreamAccumulator()
    fed = 0
    while not cap.reached(acc):
        acc.add_text(f" w{fed}")
        fed += 1
    assert count_text(acc.text, MODEL) >= 16
    assert count_text("".join(f" w{i}" for i in range(fed - 1)), MODEL) < 16


def test_no_token_count_while_the_text_is_too_short_to_reach_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counted: list[str] = []

    def counting(text: str, model: str, tool_calls: int = 0) -> int:
        counted.append(text)
        return 0

    monkeypatch.setattr(output_cap, "completion_tokens", counting)
    cap, acc = OutputCap(1000, MODEL), StreamAccumulator()
    for _ in range(200):
        acc.add_text("abc ")  # 800 bytes: cannot be 1000 tokens
        assert not cap.reached(acc)
    assert counted == []


def test_multibyte_text_is_measured_in_bytes() -> None:
    cap, acc = OutputCap(8, MODEL), StreamAccumulator()
    acc.add_text("🙂" * 8)  # 8 characters, far more than 8 tokens
    assert cap.reached(acc)


def test_the_processor_drops_everything_after_the_cut() -> None:
    proc = SSEProcessor(OpenAIAdaptor(), include_usage=False, cap=OutputCap(16, MODEL))
    out = proc.feed(b"".join(words(500)))
    assert proc.cut
    sent = [f for f in out.split(b"\n\n") if f]
    assert 8 <= len(sent) < 40
    assert proc.feed(chunk(" more")) == b"" and proc.finish() == b""


def test_cut_frames_end_chat_and_completions_with_length() -> None:
    meta = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    [frame] = [f for f in cut_frames(meta, 2, text="", usage=BILLED).split(b"\n\n") if f]
    body = orjson.loads(frame[6:])
    assert [c["finish_reason"] for c in body["choices"]] == ["length", "length"]
    assert body["choices"][1] == {"index": 1, "delta": {}, "finish_reason": "length"}
    legacy = orjson.loads(
        cut_frames({**meta, "object": "text_completion"}, 1, text="", usage=BILLED)[6:]
    )
    assert legacy["choices"][0]["text"] == "" and legacy["choices"][0]["finish_reason"] == "length"
    assert cut_frames({"type": "response.output_text.delta"}, 1, text="", usage=BILLED) == b""


def test_cut_frames_end_a_responses_stream_as_incomplete() -> None:
    meta = {"type": "response.created", "response": {"id": "r1", "model": "m", "status": "x"}}
    event, data = cut_frames(meta, 1, text="so far", usage=BILLED).split(b"\n", 1)
    assert event == b"event: response.incomplete"
    body = orjson.loads(data.strip()[6:])
    response = body["response"]
    assert (body["type"], response["id"], response["status"]) == (
        "response.incomplete",
        "r1",
        "incomplete",
    )
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["content"][0]["text"] == "so far"
    assert response["usage"] == {"input_tokens": 7, "output_tokens": 16, "total_tokens": 23}


class Upstream:
    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts
        self.read = 0
        self.closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            self.read += 1
            yield part
            await asyncio.sleep(0)

    def close(self) -> None:
        self.closed = True


async def test_a_cut_stream_stops_reading_and_ends_cleanly() -> None:
    upstream = Upstream(words(2000))
    proc = SSEProcessor(OpenAIAdaptor(), include_usage=False, cap=OutputCap(16, MODEL))
    finished: list[bool] = []
    response = SSEResponse(
        upstream.chunks(),
        upstream.close,
        proc,
        headers={},
        on_finish=lambda p, interrupted: finished.append(interrupted),
        tail=lambda p: (
            cut_frames(p.acc.first_chunk_meta, 1, text=p.acc.text, usage=BILLED) if p.cut else b""
        ),
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await response({"type": "http"}, receive, send)  # type: ignore[arg-type]
    body = b"".join(m.get("body", b"") for m in sent)
    assert body.endswith(b'"finish_reason":"length"}]}\n\n' + DONE_FRAME)
    assert upstream.closed and upstream.read < 40
    assert finished == [False]
