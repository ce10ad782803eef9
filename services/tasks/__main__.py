"""Run the tasks worker: `python -m services.tasks`."""

from __future__ import annotations

import uvloop

from services.shared.logging import configure_logging
from services.tasks.settings import load_settings
from services.tasks.worker import run


def main() -> None:
    settings = load_settings()
    configure_logging("tasks", settings.log_level)
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
