"""Entry point: `python -m services.web` serves the console and the management API."""

from __future__ import annotations

from services.shared.http_server import serve_http
from services.shared.logging import configure_logging
from services.web.app import create_app
from services.web.settings import load_settings


def main() -> None:
    settings = load_settings()
    configure_logging("web", settings.log_level)
    serve_http(create_app(settings), host=settings.bind_host, port=settings.port, grace_seconds=10)


if __name__ == "__main__":
    main()
