"""A chat answer as an OpenAI Responses object, and a chat stream as Responses' typed events
(response.created, response.in_progress, response.output_item.added / done,
response.content_part.added / done, response.output_text.delta / done,
response.reasoning_summary_text.delta / done, response.function_call_arguments.delta / done,
response.completed or response.incomplete), each numbered by `sequence_number` as OpenAI's
stream is. The wire format follows OpenAI's Responses API reference.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson
from starlette.responses import Response

from services.relay.adaptors.base import Json, UsageCounts
from services.relay.errors import REQUEST_ID_HEADER, error_body
from services.relay.ingress import call_deltas, first_choice, reply_text

# What a Responses object repeats from its request.
ECHOED = (
    "instructions",
    "max_output_tokens",
    "metadata",
    "parallel_tool_calls",
    "reasoning",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
    "user",
)
DEFAULTS: Json = {
    "instructions": None,
    "max_output_tokens": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "reasoning": None,
    "temperature": None,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "top_p": None,
    "user": None,
}
# Chat finish reasons that leave a response incomplete, and why in Responses' words.
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def usage_block(usage: UsageCounts) -> Json:
    """Responses usage: input and output totals with their cached and reasoning parts."""
    prompt = usage.prompt_tokens + usage.cache_creation_tokens
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": min(usage.cached_tokens, prompt)},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": prompt + usage.completion_tokens,
    }


def _reasoning_of(holder: Json) -> str:
    reasoning = holder.get("reasoning_content") or holder.get("reasoning")
    return reasoning if isinstance(reasoning, str) else ""


def text_part(text: str) -> Json:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str, status: str) -> Json:
    content = [text_part(text)] if status == "completed" else []
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": content,
    }


def reasoning_item(item_id: str, summary: str | None) -> Json:
    parts = [] if summary is None else [{"type": "summary_text", "text": summary}]
    return {"type": "reasoning", "id": item_id, "summary": parts}


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> Json:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def output_of(reply: Json) -> tuple[list[Json], Any]:
    """The output items of a chat completion's first choice, and its finish reason."""
    choice = first_choice(reply)
    raw = choice.get("message")
    message: Json = raw if isinstance(raw, dict) else {}
    items: list[Json] = []
    reasoning = _reasoning_of(message)
    if reasoning:
        items.append(reasoning_item(new_id("rs_"), reasoning))
    text = reply_text(message.get("content"))
    if text:
        items.append(message_item(new_id("msg_"), text, "completed"))
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        arguments = function.get("arguments")
        call_id = call.get("id")
        items.append(
            call_item(
                new_id("fc_"),
                call_id if isinstance(call_id, str) and call_id else new_id("call_"),
                str(function.get("name") or ""),
                arguments if isinstance(arguments, str) else "",
                "completed",
            )
        )
    return items, choice.get("finish_reason")


def event(kind: str, sequence: int, data: Json) -> bytes:
    """One SSE event as OpenAI sends it: `event:` names the data's type."""
    body = orjson.dumps({"type": kind, "sequence_number": sequence, **data})
    return b"event: " + kind.encode() + b"\ndata: " + body + b"\n\n"


class ResponsesEgress:
    """One `/v1/responses` request's way back: the response id every frame carries and the
    request fields a Responses object repeats."""

    __slots__ = ("created_at", "echoed", "model", "response_id")

    done_frame = b""  # Responses streams end with response.completed, no [DONE]
    ping_frame = b": PING\n\n"
    wait_frame = b": WAITING FOR UPSTREAM\n\n"
    media_type = "text/event-stream"

    def __init__(self, request: Json) -> None:
        self.response_id = new_id("resp_")
        self.created_at = int(time.time())
        self.model = str(request.get("model") or "")
        self.echoed = {name: request.get(name, DEFAULTS[name]) for name in ECHOED}

    def response(
        self, status: str, output: list[Json], usage: UsageCounts | None, finish: Any = None
    ) -> Json:
        """The Responses object at `status` (in_progress, completed or incomplete)."""
        reason = INCOMPLETE.get(finish) if isinstance(finish, str) else None
        if status == "completed" and reason is not None:
            status = "incomplete"
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": None,
            "incomplete_details": {"reason": reason} if status == "incomplete" else None,
            "model": self.model,
            "output": output,
            "usage": usage_block(usage) if usage is not None else None,
            "store": False,
            "truncation": "disabled",
            **self.echoed,
        }

    def reply(self, reply: Json, usage: UsageCounts) -> bytes:
        output, finish = output_of(reply)
        return orjson.dumps(self.response("completed", output, usage, finish))

    def replay(self, data: bytes) -> bytes:
        """`reply`'s body as the events that would have carried it (pseudo-streams)."""
        final = orjson.loads(data)
        events = StreamEvents(self)
        frames = [events.start()]
        for item in final.get("output") or ():
            frames.append(events.whole_item(item))
        frames.append(events.emit(f"response.{final['status']}", {"response": final}))
        return b"".join(frames)

    def stream(self, prompt_tokens: int) -> StreamEvents:
        return StreamEvents(self)

    def error(
        self, status: int, message: str, request_id: str, headers: dict[str, str] | None
    ) -> Response:
        body = error_body(
            message, type_=error_type(status), code=None, param=None, request_id=request_id
        )
        merged = {REQUEST_ID_HEADER: request_id, **(headers or {})}
        return Response(body, status, headers=merged, media_type="application/json")

    def error_event(self, status: int, message: str, request_id: str) -> bytes:
        """An error once the stream's headers went out: Responses' `error` event."""
        suffix = f" (request id: {request_id})" if request_id else ""
        data = {"code": error_type(status), "message": message + suffix, "param": None}
        return event("error", 0, data)


def error_type(status: int) -> str:
    if status == 429:
        return "rate_limit_exceeded"
    return "invalid_request_error" if status < 500 else "upstream_error"


class _Item:
    """An output item being streamed."""

    __slots__ = ("data", "index", "text")

    def __init__(self, index: int, data: Json) -> None:
        self.index = index
        self.data = data
        self.text = ""  # text, summary or arguments so far


class StreamEvents:
    """Chat chunks in, Responses events out (first choice only: Responses has no `n`). A text
    or reasoning item opens when its first delta arrives and closes when another kind starts;
    function calls stay open until the end, since chat streams may interleave their
    arguments."""

    __slots__ = ("_calls", "_done", "_egress", "_finish", "_open", "_sequence")

    def __init__(self, egress: ResponsesEgress) -> None:
        self._egress = egress
        self._sequence = -1
        self._open: _Item | None = None  # the open message or reasoning item
        self._calls: dict[Any, _Item] = {}  # chat tool_call index -> its item
        self._done: list[_Item] = []  # items in output order, closed or not
        self._finish: Any = None

    def emit(self, kind: str, data: Json) -> bytes:
        self._sequence += 1
        return event(kind, self._sequence, data)

    def start(self) -> bytes:
        started = self._egress.response("in_progress", [], None)
        return self.emit("response.created", {"response": started}) + self.emit(
            "response.in_progress", {"response": started}
        )

    def _add(self, data: Json) -> _Item:
        item = _Item(len(self._done), data)
        self._done.append(item)
        return item

    def _added(self, item: _Item) -> bytes:
        return self.emit(
            "response.output_item.added", {"output_index": item.index, "item": item.data}
        )

    def _item_done(self, item: _Item) -> bytes:
        return self.emit(
            "response.output_item.done", {"output_index": item.index, "item": item.data}
        )

    # ------------------------------------------------------------ message and reasoning

    def _where(self, item: _Item) -> Json:
        index = "content_index" if item.data["type"] == "message" else "summary_index"
        return {"item_id": item.data["id"], "output_index": item.index, index: 0}

    def _part_added(self, item: _Item) -> bytes:
        where = self._where(item)
        if item.data["type"] == "message":
            return self.emit("response.content_part.added", {**where, "part": text_part("")})
        empty = {"type": "summary_text", "text": ""}
        return self.emit("response.reasoning_summary_part.added", {**where, "part": empty})

    def _part_done(self, item: _Item) -> bytes:
        where, text = self._where(item), item.text
        if item.data["type"] == "message":
            return self.emit(
                "response.output_text.done", {**where, "text": text, "logprobs": []}
            ) + self.emit("response.content_part.done", {**where, "part": text_part(text)})
        full = {"type": "summary_text", "text": text}
        return self.emit("response.reasoning_summary_text.done", {**where, "text": text}) + (
            self.emit("response.reasoning_summary_part.done", {**where, "part": full})
        )

    def _close(self) -> bytes:
        item, self._open = self._open, None
        if item is None:
            return b""
        closing = self._part_done(item)
        if item.data["type"] == "message":
            item.data = message_item(item.data["id"], item.text, "completed")
        else:
            item.data = reasoning_item(item.data["id"], item.text)
        return closing + self._item_done(item)

    def _text(self, kind: str, delta: str, item_id: str | None = None) -> bytes:
        frames = b""
        item = self._open
        if item is None or item.data["type"] != kind:
            frames = self._close()
            if kind == "message":
                item = self._add(message_item(item_id or new_id("msg_"), "", "in_progress"))
            else:
                item = self._add(reasoning_item(item_id or new_id("rs_"), None))
            self._open = item
            frames += self._added(item)
            frames += self._part_added(item)
        item.text += delta
        where = self._where(item)
        if kind == "message":
            data = {**where, "delta": delta, "logprobs": []}
            return frames + self.emit("response.output_text.delta", data)
        return frames + self.emit(
            "response.reasoning_summary_text.delta", {**where, "delta": delta}
        )

    # ------------------------------------------------------------ function calls

    def _tool_calls(self, calls: list[Any]) -> bytes:
        frames = b""
        for delta in call_deltas(calls):
            item = self._calls.get(delta.position)
            if item is None or delta.replaces(item.data["call_id"]):
                frames += self._close()
                call_id = delta.call_id or new_id("call_")
                item = self._add(call_item(new_id("fc_"), call_id, delta.name, "", "in_progress"))
                self._calls[delta.position] = item
                frames += self._added(item)
            if arguments := delta.arguments:
                item.text += arguments
                data = {"item_id": item.data["id"], "output_index": item.index, "delta": arguments}
                frames += self.emit("response.function_call_arguments.delta", data)
        return frames

    def _close_call(self, item: _Item) -> bytes:
        data = item.data
        item.data = call_item(data["id"], data["call_id"], data["name"], item.text, "completed")
        where = {"item_id": data["id"], "output_index": item.index, "arguments": item.text}
        return self.emit("response.function_call_arguments.done", where) + self._item_done(item)

    # ------------------------------------------------------------ the stream

    def chunk(self, chunk: Json) -> bytes:
        frames = self.start() if self._sequence < 0 else b""
        choice = first_choice(chunk)
        delta = choice.get("delta")
        if isinstance(delta, dict):
            reasoning = _reasoning_of(delta)
            if reasoning:
                frames += self._text("reasoning", reasoning)
            text = delta.get("content")
            if isinstance(text, str) and text:
                frames += self._text("message", text)
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                frames += self._tool_calls(calls)
        if choice.get("finish_reason"):
            self._finish = choice["finish_reason"]
        return frames

    def end(self, usage: UsageCounts, *, cut: bool) -> bytes:
        frames = (self.start() if self._sequence < 0 else b"") + self._close()
        for item in self._calls.values():
            frames += self._close_call(item)
        finish = "length" if cut else self._finish
        output = [item.data for item in self._done]
        final = self._egress.response("completed", output, usage, finish)
        return frames + self.emit(f"response.{final['status']}", {"response": final})

    def whole_item(self, data: Json) -> bytes:
        """A finished item as the events that would have streamed it (pseudo-streams); its
        id stays the one the final response carries."""
        kind = data.get("type")
        if kind in ("message", "reasoning"):
            parts = data.get("content" if kind == "message" else "summary") or ()
            text = "".join(p["text"] for p in parts if isinstance(p.get("text"), str))
            return self._text(kind, text, data["id"]) + self._close()
        item = self._add({**data, "arguments": "", "status": "in_progress"})
        item.text = data.get("arguments") or ""
        frames = self._added(item)
        if item.text:
            where = {"item_id": data["id"], "output_index": item.index, "delta": item.text}
            frames += self.emit("response.function_call_arguments.delta", where)
        return frames + self._close_call(item)
