"""`python -m services.accounts`: run the accounts gRPC service."""

from __future__ import annotations

import uvloop

from services.accounts.server import serve
from services.accounts.settings import load_settings
from services.shared.logging import configure_logging


def main() -> None:
    settings = load_settings()
    configure_logging("accounts", settings.log_level)
    uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
