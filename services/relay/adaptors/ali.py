"""Ali DashScope (17): chat and embeddings in DashScope's OpenAI-compatible mode, image
generation with the wanx models on DashScope's own async task API (upstream
`relay/channel/ali/image.go`).

An image request is submitted to `/api/v1/services/aigc/text2image/image-synthesis` with
`X-DashScope-Async: enable` (`input.prompt`, `parameters.size` as `1024*1024`, `parameters.n`),
then its task is polled at `/api/v1/tasks/{id}` every POLL_SECONDS until it SUCCEEDED (its
result URLs become OpenAI's `data[].url`) or FAILED (the attempt fails with DashScope's code and
message), within the relay's RELAY_TIMEOUT. The images are charged per image generated.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson

from services.relay.adaptors.base import Json, Outgoing, Target, UpstreamRequest
from services.relay.adaptors.compat import Compat, CompatAdaptor
from services.relay.adaptors.native import ProviderError, canonical_body, json_object
from services.relay.endpoints import IMAGES
from services.relay.errors import RelayError

SPEC = Compat("https://dashscope.aliyuncs.com", "/compatible-mode/v1")
SUBMIT_PATH = "/api/v1/services/aigc/text2image/image-synthesis"
TASK_PATH = "/api/v1/tasks/"
POLL_SECONDS = 1.0
ENDED = frozenset({"FAILED", "CANCELED", "UNKNOWN"})


def to_task(body: Json, model: str) -> Json:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise RelayError(400, "prompt is required", type_="invalid_request_error", param="prompt")
    parameters: Json = {"n": body.get("n") if isinstance(body.get("n"), int) else 1}
    size = body.get("size")
    if isinstance(size, str) and "x" in size:
        parameters["size"] = size.replace("x", "*")
    return {"model": model, "input": {"prompt": prompt}, "parameters": parameters}


def to_images(task: Json) -> bytes:
    output = task.get("output")
    results = output.get("results") if isinstance(output, dict) else None
    items = results if isinstance(results, list) else []
    data = [
        {"url": item["url"]}
        for item in items
        if isinstance(item, dict) and isinstance(item.get("url"), str)
    ]
    return orjson.dumps({"created": int(time.time()), "data": data})


class AliAdaptor(CompatAdaptor):
    polls = True  # image tasks finish later (the other endpoints answer at once)

    def __init__(self) -> None:
        super().__init__(SPEC)

    def build_request(self, target: Target, body: Outgoing) -> UpstreamRequest:
        if target.endpoint is not IMAGES:
            return super().build_request(target, body)
        headers = self.headers(target)
        headers["Content-Type"] = "application/json"
        headers["X-DashScope-Async"] = "enable"
        native = to_task(canonical_body(body), target.model)
        return UpstreamRequest(self.base_url(target) + SUBMIT_PATH, headers, orjson.dumps(native))

    async def poll(
        self, target: Target, data: bytes, http: aiohttp.ClientSession, proxy: str
    ) -> bytes:
        """The finished task's answer (the caller bounds the wait)."""
        if target.endpoint is not IMAGES:
            return data
        submitted = json_object(data) or {}
        output = submitted.get("output")
        task_id = output.get("task_id") if isinstance(output, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise ProviderError(502, "DashScope answered the image request without a task", {})
        url = self.base_url(target) + TASK_PATH + task_id
        while True:
            await asyncio.sleep(POLL_SECONDS)
            async with http.get(url, headers=self.headers(target), proxy=proxy or None) as answer:
                body = await answer.read()
            task = json_object(body) or {}
            output = task.get("output")
            status = output.get("task_status") if isinstance(output, dict) else None
            if status == "SUCCEEDED":
                return body
            if status in ENDED or answer.status >= 400:
                details = output if isinstance(output, dict) else task
                message = str(details.get("message") or f"the image task ended {status}")
                code = str(details.get("code") or "task_failed")
                refused = code.startswith(("DataInspection", "InvalidParameter"))
                error = {"type": "upstream_error", "code": code}
                raise ProviderError(400 if refused else 502, message, error)

    def convert_response(self, target: Target, data: bytes) -> bytes:
        if target.endpoint is not IMAGES:
            return super().convert_response(target, data)
        task = json_object(data)
        return data if task is None else to_images(task)
