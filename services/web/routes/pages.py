"""The console page, SPA fallback and the OpenAI-style 404 for unknown API paths."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Match, Route

from services.web.api import JSONResponse

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_API_PREFIXES = ("/api/", "/v1/", "/assets/")
_API_EXACT = frozenset({"/api", "/v1", "/assets"})


def load_index() -> str:
    return (TEMPLATES / "index.html").read_text(encoding="utf-8")


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
    return HTMLResponse(request.app.state.index_html)


async def fallback(request: Request) -> Response:
    path = request.url.path
    if path in _API_EXACT or path.startswith(_API_PREFIXES):
        return _slash_redirect(request) or not_found(request)
    if request.method in {"GET", "HEAD"}:
        return HTMLResponse(request.app.state.index_html)
    return not_found(request)


ROUTES = [Route("/", index, methods=["GET"])]
FALLBACK = Route(
    "/{path:path}",
    fallback,
    methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"],
)
