"""A fake midjourney-proxy and Suno API on one loopback server, speaking their JSON.

midjourney-proxy: `POST /mj/submit/{action}` and `/mj/insight-face/swap` answer
`{"code": 1, "description": "提交成功", "result": "<task id>", "properties": {...}}` (key in the
`mj-api-secret` header; a wrong key is 401); a prompt containing `reject` is refused with code 24
("banned prompt"), one containing `queue` is accepted with code 22. `POST
/mj/task/list-by-condition {"ids": [...]}` answers the tasks; each poll moves a task one step:
SUBMITTED -> IN_PROGRESS (50%) -> SUCCESS (100%, imageUrl) or, when its prompt contains `fail`,
FAILURE with a failReason. With `polls_open` cleared, polls wait until it is set (fault tests).

OpenAI videos: `POST /v1/videos` answers a video object (`queued`), `GET /v1/videos/{id}` moves
it a step (in_progress, then completed, or failed with an error when the prompt says `fail`),
`GET /v1/videos/{id}/content` answers the file; a prompt with `reject` is a 400.

Suno: `POST /suno/submit/{music|lyrics}` answers `{"code": "success", "data": "<task id>"}`
(bearer key); a prompt containing `reject` gets `{"code": "error", "message": ...}` and 400.
`POST /suno/fetch {"ids": [...]}` answers `{"code": "success", "data": [task, ...]}` with the same
steps (times in seconds, `data` the clips).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Self

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42fake-video" + bytes(64)
IMAGE_BYTES = b"\x89PNG\r\n\x1a\nfake-image" + bytes(32)


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


@dataclass
class FakeTask:
    id: str
    platform: str  # "mj" | "suno" | "video"
    action: str
    prompt: str
    model: str = ""
    step: int = 0
    submit_time: float = field(default_factory=time.time)

    @property
    def failing(self) -> bool:
        return "fail" in self.prompt

    def status(self) -> tuple[str, str]:
        if self.step == 0:
            return "SUBMITTED", "0%"
        if self.step == 1:
            return "IN_PROGRESS", "50%"
        return ("FAILURE", "") if self.failing else ("SUCCESS", "100%")


@dataclass
class FakeTaskUpstream:
    key: str = "mj-secret"
    host: str = "127.0.0.1"
    tasks: dict[str, FakeTask] = field(default_factory=dict)
    submits: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    polls: int = 0
    # While cleared, Midjourney polls wait (a replica stays mid-poll); `held` counts them.
    polls_open: threading.Event = field(default_factory=threading.Event)
    held: int = 0
    _server: uvicorn.Server | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _port: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    def image_url(self, task_id: str) -> str:
        return f"{self.url}/image/{task_id}.png"

    async def image(self, request: Request) -> Response:
        return Response(IMAGE_BYTES, media_type="image/png")

    # ------------------------------------------------------------------ midjourney-proxy

    async def mj_submit(self, request: Request) -> Response:
        if request.headers.get("mj-api-secret") != self.key:
            return _json({"code": 401, "description": "unauthorized"}, 401)
        body = orjson.loads(await request.body())
        path = request.url.path
        with self._lock:
            self.submits.append((path, body))
        prompt = str(body.get("prompt") or "")
        if "reject" in prompt:
            return _json({"code": 24, "description": "banned prompt", "result": None})
        action = path.rsplit("/", 1)[-1].upper()
        if path.endswith("upload-discord-images"):
            return _json({"code": 1, "description": "ok", "result": ["https://cdn.example.test/u"]})
        task = FakeTask(id=uuid.uuid4().hex[:16], platform="mj", action=action, prompt=prompt)
        with self._lock:
            self.tasks[task.id] = task
        code = 22 if "queue" in prompt else 1
        return _json(
            {
                "code": code,
                "description": "提交成功" if code == 1 else "排队中",
                "result": task.id,
                "properties": {"discordInstanceId": "1", "discordChannelId": "2"},
            }
        )

    def _mj_view(self, task: FakeTask) -> dict[str, Any]:
        status, progress = task.status()
        done = status in ("SUCCESS", "FAILURE")
        return {
            "id": task.id,
            "action": task.action,
            "prompt": task.prompt,
            "promptEn": task.prompt,
            "description": "/imagine " + task.prompt,
            "state": "",
            "submitTime": int(task.submit_time * 1000),
            "startTime": int(task.submit_time * 1000) if task.step else 0,
            "finishTime": int(time.time() * 1000) if done else 0,
            "imageUrl": self.image_url(task.id) if status == "SUCCESS" else "",
            "status": status,
            "progress": progress,
            "failReason": "banned by the moderator" if status == "FAILURE" else "",
            "buttons": [{"customId": f"MJ::JOB::upsample::1::{task.id}", "label": "U1"}]
            if status == "SUCCESS"
            else [],
            "properties": {"seed": "12345"} if status == "SUCCESS" else {},
        }

    async def mj_list(self, request: Request) -> Response:
        if request.headers.get("mj-api-secret") != self.key:
            return _json({"code": 401, "description": "unauthorized"}, 401)
        ids = orjson.loads(await request.body()).get("ids") or []
        if not self.polls_open.is_set():
            with self._lock:
                self.held += 1
            await asyncio.to_thread(self.polls_open.wait, 60)
            return _json([])  # the poller that asked is gone by now; nothing moves
        return _json([self._mj_view(task) for task in self._step(ids, "mj")])

    def _step(self, ids: list[str], platform: str) -> list[FakeTask]:
        with self._lock:
            self.polls += 1
            found = [self.tasks[i] for i in ids if i in self.tasks]
            found = [task for task in found if task.platform == platform]
            for task in found:
                task.step = min(task.step + 1, 2)
            return found

    # ------------------------------------------------------------------ Suno

    async def suno_submit(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return _json({"code": "error", "message": "unauthorized", "data": None}, 401)
        body = orjson.loads(await request.body())
        with self._lock:
            self.submits.append((request.url.path, body))
        prompt = str(body.get("prompt") or body.get("gpt_description_prompt") or "")
        if "reject" in prompt:
            return _json({"code": "error", "message": "prompt rejected", "data": None}, 400)
        action = request.path_params["action"].upper()
        task = FakeTask(id=uuid.uuid4().hex[:16], platform="suno", action=action, prompt=prompt)
        with self._lock:
            self.tasks[task.id] = task
        return _json({"code": "success", "message": "", "data": task.id})

    async def suno_fetch(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return _json({"code": "error", "message": "unauthorized", "data": None}, 401)
        ids = orjson.loads(await request.body()).get("ids") or []
        items = []
        for task in self._step(ids, "suno"):
            status, progress = task.status()
            items.append(
                {
                    "task_id": task.id,
                    "action": task.action,
                    "status": status,
                    "fail_reason": "upstream rejected the song" if status == "FAILURE" else "",
                    "submit_time": int(task.submit_time),
                    "start_time": int(task.submit_time),
                    "finish_time": int(time.time()) if status in ("SUCCESS", "FAILURE") else 0,
                    "progress": progress,
                    "data": [{"audio_url": f"https://cdn.example.test/{task.id}.mp3"}]
                    if status == "SUCCESS"
                    else [],
                }
            )
        return _json({"code": "success", "message": "", "data": items})

    # ------------------------------------------------------------------ OpenAI videos

    async def video_create(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return _json({"error": {"message": "Incorrect API key", "type": "auth"}}, 401)
        body = orjson.loads(await request.body())
        with self._lock:
            self.submits.append((request.url.path, body))
        prompt = str(body.get("prompt") or "")
        if "reject" in prompt:
            error = {"message": "Your request was blocked by moderation", "type": "invalid"}
            return _json({"error": error}, 400)
        task = FakeTask(
            id=f"video_{uuid.uuid4().hex[:12]}",
            platform="video",
            action="",
            prompt=prompt,
            model=str(body.get("model")),
        )
        with self._lock:
            self.tasks[task.id] = task
        return _json(self._video_view(task))

    def _video_view(self, task: FakeTask) -> dict[str, Any]:
        status, _progress = task.status()
        names = {"SUBMITTED": "queued", "IN_PROGRESS": "in_progress"}
        name = names.get(status) or ("failed" if status == "FAILURE" else "completed")
        view: dict[str, Any] = {
            "id": task.id,
            "object": "video",
            "model": task.model,
            "status": name,
            "progress": {"queued": 0, "in_progress": 50}.get(name, 100),
            "created_at": int(task.submit_time),
            "completed_at": int(time.time()) if name in ("completed", "failed") else None,
            "size": "720x1280",
            "seconds": "4",
        }
        if name == "failed":
            view["error"] = {"code": "moderation_blocked", "message": "the video was blocked"}
        return view

    async def video_get(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return _json({"error": {"message": "Incorrect API key", "type": "auth"}}, 401)
        found = self._step([request.path_params["id"]], "video")
        if not found:
            return _json({"error": {"message": "Video not found", "type": "invalid"}}, 404)
        return _json(self._video_view(found[0]))

    async def video_content(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return _json({"error": {"message": "Incorrect API key", "type": "auth"}}, 401)
        return Response(VIDEO_BYTES, media_type="video/mp4")

    # ------------------------------------------------------------------ lifecycle

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/mj/submit/{action}", self.mj_submit, methods=["POST"]),
                Route("/mj/insight-face/swap", self.mj_submit, methods=["POST"]),
                Route("/mj/task/list-by-condition", self.mj_list, methods=["POST"]),
                Route("/suno/submit/{action}", self.suno_submit, methods=["POST"]),
                Route("/suno/fetch", self.suno_fetch, methods=["POST"]),
                Route("/image/{name}", self.image, methods=["GET"]),
                Route("/v1/videos", self.video_create, methods=["POST"]),
                Route("/v1/videos/{id}", self.video_get, methods=["GET"]),
                Route("/v1/videos/{id}/content", self.video_content, methods=["GET"]),
            ]
        )

    def start(self, timeout: float = 10.0) -> None:
        self.polls_open.set()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app(), log_config=None, access_log=False, lifespan="off", loop="asyncio"
        )
        self._server = uvicorn.Server(config)
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.run(sockets=[sock]), name="fake-tasks", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake task upstream did not start")
            time.sleep(0.01)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
