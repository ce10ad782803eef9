"""Run the relay: `python -m services.relay`."""

from __future__ import annotations

import logging

import uvicorn

from services.relay.app import create_app
from services.relay.settings import load_settings
from services.shared.logging import configure_logging


def main() -> None:
    settings = load_settings()
    configure_logging("relay", settings.log_level)
    # httpx logs every upstream request at INFO: noise, and a cost on the hot path.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    uvicorn.run(
        create_app(settings),
        host=settings.bind_host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        # Client addresses behind a reverse proxy follow ReverseProxyEnabled/Provider; uvicorn's
        # own X-Forwarded-For rewrite would trust any loopback peer whatever the option says.
        proxy_headers=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )


if __name__ == "__main__":
    main()
