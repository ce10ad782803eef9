"""A fake Ali DashScope on loopback: wanx image generation as DashScope's async tasks
(`POST /api/v1/services/aigc/text2image/image-synthesis` with `X-DashScope-Async: enable`,
then `GET /api/v1/tasks/{id}`: RUNNING once, then SUCCEEDED with one result URL per image, or
FAILED with DataInspectionFailed for a prompt containing `forbidden`).

Like DashScope it refuses a synchronous call (no async header) and a request without
`Authorization: Bearer`."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.loopback import LoopbackServer


@dataclass
class FakeDashScope(LoopbackServer):
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: int = 0
    _ids: Any = field(default_factory=itertools.count)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(
                    "/api/v1/services/aigc/text2image/image-synthesis",
                    self._submit,
                    methods=["POST"],
                ),
                Route("/api/v1/tasks/{task_id}", self._task, methods=["GET"]),
            ]
        )

    async def _submit(self, request: Request) -> Response:
        body = await self.record(request)
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return JSONResponse({"code": "InvalidApiKey", "message": "No API-key provided."}, 401)
        if request.headers.get("x-dashscope-async") != "enable":
            message = "current user api does not support synchronous calls"
            return JSONResponse({"code": "AccessDenied", "message": message}, 403)
        task_id = f"task-{next(self._ids)}"
        self.tasks[task_id] = {"body": body, "seen": 0}
        return JSONResponse(
            {"output": {"task_status": "PENDING", "task_id": task_id}, "request_id": "r1"}
        )

    async def _task(self, request: Request) -> Response:
        self.polls += 1
        task = self.tasks.get(request.path_params["task_id"])
        if task is None:
            return JSONResponse({"code": "InvalidParameter", "message": "task not found"}, 400)
        task["seen"] += 1
        task_id = request.path_params["task_id"]
        if task["seen"] == 1:
            return JSONResponse({"output": {"task_id": task_id, "task_status": "RUNNING"}})
        body = task["body"]
        if "forbidden" in body["input"]["prompt"]:
            output = {
                "task_id": task_id,
                "task_status": "FAILED",
                "code": "DataInspectionFailed",
                "message": "Input data may contain inappropriate content.",
            }
            return JSONResponse({"output": output, "request_id": "r2"})
        count = int(body["parameters"].get("n", 1))
        results = [
            {"url": f"https://dashscope-result.test/{task_id}/{i}.png"} for i in range(count)
        ]
        output = {"task_id": task_id, "task_status": "SUCCEEDED", "results": results}
        return JSONResponse({"output": output, "usage": {"image_count": count}, "request_id": "r2"})
