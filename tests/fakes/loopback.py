"""A loopback HTTP server on a background thread, for fake upstream providers."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Self

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request


@dataclass(frozen=True)
class Recorded:
    path: str
    query: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class LoopbackServer:
    """Subclasses provide `app()`; `start()` / `stop()` run it, `record()` keeps requests."""

    host: str = "127.0.0.1"
    requests: list[Recorded] = field(default_factory=list, init=False)
    _server: uvicorn.Server | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _port: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    def app(self) -> Starlette:
        raise NotImplementedError

    async def record(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        body = orjson.loads(raw) if raw.strip() else {}
        with self._lock:
            self.requests.append(
                Recorded(request.url.path, request.url.query, dict(request.headers), body)
            )
        return body if isinstance(body, dict) else {}

    @property
    def last(self) -> Recorded:
        with self._lock:
            if not self.requests:
                raise AssertionError("the fake upstream received no request")
            return self.requests[-1]

    def start(self, timeout: float = 10.0) -> None:
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
            target=lambda: server.run(sockets=[sock]), name=type(self).__name__, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"{type(self).__name__} did not start")
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
