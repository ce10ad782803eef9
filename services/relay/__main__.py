"""Run the relay: `python -m services.relay`."""

from __future__ import annotations

import logging

from services.relay.app import create_app
from services.relay.settings import load_settings
from services.shared.http_server import serve_http
from services.shared.logging import configure_logging


def main() -> None:
    settings = load_settings()
    configure_logging("relay", settings.log_level)
    # httpx (image downloads) logs every request at INFO: noise in the relay's log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    serve_http(
        create_app(settings),
        host=settings.bind_host,
        port=settings.port,
        grace_seconds=settings.shutdown_grace_seconds,
    )


if __name__ == "__main__":
    main()
