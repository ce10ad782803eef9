"""Loopback fakes of the sign-in providers: Cloudflare Turnstile's siteverify, and an OAuth 2 /
OpenID Connect provider (discovery document, authorize, token and userinfo endpoints) that
serves the GitHub-, OIDC- and Discourse-shaped (LinuxDO, IDC Flare) flows, and the external
WeChat server that turns a verification code into an open id."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from yarl import URL


class LoopbackServer:
    """An aiohttp app on 127.0.0.1 with a free port, started in the test's event loop."""

    def __init__(self, app: web.Application) -> None:
        self._runner = web.AppRunner(app)
        self.url = ""

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        await self._runner.cleanup()


@dataclass
class FakeTurnstile:
    """siteverify: a token in `valid` with the right secret passes; `delay` stalls the answer."""

    secret: str
    valid: set[str] = field(default_factory=set)
    delay: float = 0.0
    url: str = ""
    calls: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/siteverify", self._siteverify)
        return app

    async def _siteverify(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.calls.append(form)
        if self.delay:
            await asyncio.sleep(self.delay)
        ok = form.get("secret") == self.secret and form.get("response") in self.valid
        body: dict[str, Any] = {"success": ok}
        if not ok:
            body["error-codes"] = ["invalid-input-response"]
        return web.json_response(body)


@dataclass
class FakeOAuthProvider:
    """Issues one-time codes for a chosen user; exchanges them (client credentials checked)
    for an access token that userinfo accepts. `down` makes token and userinfo answer 503."""

    client_id: str
    client_secret: str
    url: str = ""
    down: bool = False
    # Who consents on the authorize page (a browser test's user); None denies consent.
    consenting_user: dict[str, Any] | None = None
    _codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    _tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        app.router.add_get("/userinfo", self._userinfo)
        app.router.add_get("/user", self._userinfo)  # GitHub's shape: api.github.com/user
        # LinuxDO / IDC Flare Connect's shape (Discourse): /oauth2/token and /api/user
        app.router.add_post("/oauth2/token", self._token)
        app.router.add_get("/api/user", self._userinfo)
        return app

    def issue_code(self, user: dict[str, Any]) -> str:
        """What the authorize endpoint hands back after the user consents."""
        code = secrets.token_urlsafe(12)
        self._codes[code] = user
        return code

    async def _authorize(self, request: web.Request) -> web.Response:
        """The consent page, consented at once: back to redirect_uri with a code and the state."""
        query = request.query
        if query.get("client_id") != self.client_id:
            return web.Response(status=400, text="unknown client")
        target = URL(query["redirect_uri"])
        if self.consenting_user is None:
            raise web.HTTPFound(str(target.with_query(error="access_denied", state=query["state"])))
        code = self.issue_code(self.consenting_user)
        raise web.HTTPFound(str(target.with_query(code=code, state=query["state"])))

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "userinfo_endpoint": f"{self.url}/userinfo",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    def _client_ok(self, request: web.Request, form: dict[str, str]) -> bool:
        if request.headers.get("Authorization", "").startswith("Basic "):
            import base64

            raw = base64.b64decode(request.headers["Authorization"][6:]).decode()
            client_id, _, client_secret = raw.partition(":")
        else:
            client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        return client_id == self.client_id and client_secret == self.client_secret

    async def _token(self, request: web.Request) -> web.Response:
        if self.down:
            return web.Response(status=503, text="upstream maintenance")
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append(form)
        if not self._client_ok(request, form):
            return web.json_response({"error": "invalid_client"}, status=401)
        user = self._codes.pop(form.get("code", ""), None)  # a code works once
        if user is None:
            return web.json_response({"error": "invalid_grant"}, status=400)
        token = secrets.token_urlsafe(16)
        self._tokens[token] = user
        return web.json_response({"access_token": token, "token_type": "bearer"})

    async def _userinfo(self, request: web.Request) -> web.Response:
        if self.down:
            return web.Response(status=503, text="upstream maintenance")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        user = self._tokens.get(token)
        if user is None:
            return web.json_response({"message": "Bad credentials"}, status=401)
        return web.json_response(user)


@dataclass
class FakeWeChatServer:
    """`GET /api/wechat/user?code=`: the open id for a code issued by `issue_code`, once, when
    the Authorization header carries the server token (as the WeChat server project does)."""

    token: str
    url: str = ""
    _codes: dict[str, str] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/wechat/user", self._user)
        return app

    def issue_code(self, open_id: str) -> str:
        code = f"{secrets.randbelow(10**6):06d}"
        self._codes[code] = open_id
        return code

    async def _user(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != self.token:
            return web.json_response({"success": False, "message": "unauthorized"})
        open_id = self._codes.pop(request.query.get("code", ""), "")
        return web.json_response({"success": True, "message": "", "data": open_id})
