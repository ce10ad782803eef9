"""How every HTTP service (relay, web) runs under uvicorn."""

from __future__ import annotations

import uvicorn
from starlette.types import ASGIApp


def serve_http(app: ASGIApp, *, host: str, port: int, grace_seconds: float) -> None:
    """uvloop and httptools; the service's own JSON logs and access log instead of uvicorn's;
    no X-Forwarded-For rewrite: client addresses behind a reverse proxy follow the
    ReverseProxyEnabled/Provider options and TRUSTED_PROXIES (services.shared.client_ip),
    where uvicorn's rewrite would trust any loopback peer whatever the options say."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=int(grace_seconds),
    )
