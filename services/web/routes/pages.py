"""The console page (with the admin's custom head HTML), `/custom/global.css|js`, the SPA
fallback and the OpenAI-style 404 for unknown API paths (upstream `router/web-router.go`)."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Match, Route

from services.web.api import JSONResponse
from services.web.deps import Deps
from services.web.options_cache import options_cache

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_API_PREFIXES = ("/api/", "/v1/", "/assets/")
_API_EXACT = frozenset({"/api", "/v1", "/assets"})


CUSTOM_HEAD = "<!-- if veloera custom::custom_head -->"


def load_index() -> str:
    return (TEMPLATES / "index.html").read_text(encoding="utf-8")


async def _options(request: Request) -> dict[str, str]:
    """The cached options; none while accounts cannot answer, so the page still loads."""
    deps: Deps = request.app.state.deps
    try:
        return await options_cache(request).get(deps)
    except grpc.aio.AioRpcError as exc:
        logger.warning("options unavailable for the console page: %s", exc.code())
        return {}


async def _page(request: Request) -> HTMLResponse:
    """The shell with `custom_head_html` in place of its placeholder comment."""
    head = (await _options(request)).get("custom_head_html", "")
    html: str = request.app.state.index_html
    return HTMLResponse(html.replace(CUSTOM_HEAD, head) if head else html)


async def global_css(request: Request) -> Response:
    css = (await _options(request)).get("global_css", "")
    return Response(css, media_type="text/css; charset=utf-8")


async def global_js(request: Request) -> Response:
    js = (await _options(request)).get("global_js", "")
    return Response(js, media_type="text/javascript; charset=utf-8")


def not_found(request: Request) -> JSONResponse:
    message = f"Invalid URL ({request.method} {request.url.path})"
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error"}}, status_code=404
    )


def _slash_redirect(request: Request) -> Response | None:
    """`/api/user` answers like `/api/user/` would (a redirect keeping the method)."""
    path = request.url.path
    if path.endswith("/"):
        return None
    scope = {**request.scope, "path": path + "/"}
    for route in request.app.router.routes:
        if route.path != "/{path:path}" and route.matches(scope)[0] == Match.FULL:
            return RedirectResponse(request.url.replace(path=path + "/"), status_code=307)
    return None


async def index(request: Request) -> Response:
    return await _page(request)


async def fallback(request: Request) -> Response:
    path = request.url.path
    if path in _API_EXACT or path.startswith(_API_PREFIXES):
        return _slash_redirect(request) or not_found(request)
    if request.method in {"GET", "HEAD"}:
        return await _page(request)
    return not_found(request)


ROUTES = [
    Route("/", index, methods=["GET"]),
    Route("/custom/global.css", global_css, methods=["GET"]),
    Route("/custom/global.js", global_js, methods=["GET"]),
]
FALLBACK = Route(
    "/{path:path}",
    fallback,
    methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"],
)
