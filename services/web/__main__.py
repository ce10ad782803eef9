"""Entry point: `python -m services.web` serves the console and the management API."""

from __future__ import annotations

import uvicorn

from services.shared.logging import configure_logging
from services.web.app import create_app
from services.web.settings import load_settings


def main() -> None:
    settings = load_settings()
    configure_logging("web", settings.log_level)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.bind_host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        # Client addresses behind a reverse proxy follow ReverseProxyEnabled/Provider and
        # TRUSTED_PROXIES (services.shared.client_ip); uvicorn's own rewrite would apply
        # whatever the option says.
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
