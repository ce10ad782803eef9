"""Run the billing service: `python -m services.billing`."""

from __future__ import annotations

import uvloop

from services.billing.server import serve
from services.billing.settings import load_settings
from services.shared.logging import configure_logging


def main() -> None:
    settings = load_settings()
    configure_logging("billing", settings.log_level)
    uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
