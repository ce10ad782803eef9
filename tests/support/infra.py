"""The real system the tests run against: what the session's embedded PostgreSQL and NATS are."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.cli.infra import (
    EmbeddedNats,
    EmbeddedPostgres,
)

METRICS_TOKEN = "test-metrics-token"


@dataclass(frozen=True)
class Infra:
    database_url: str  # as the superuser, password included
    nats_url: str  # as the unrestricted admin user, password included
    work_dir: Path
    nats: EmbeddedNats | None = None  # fault tests restart it (and start it again)
    postgres: EmbeddedPostgres | None = None  # fault tests crash it (and start it again)
