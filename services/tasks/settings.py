"""Settings of the tasks worker, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.shared import nats_auth
from services.shared.config import Env, Secret


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: Secret
    nats_url: str
    nats_password: Secret  # NATS_PASSWORD_TASKS: this service connects as user "tasks"
    bind_host: str
    metrics_port: int
    log_level: str
    fetch_batch: int
    fetch_timeout: float
    # UPDATE_TASK=false leaves polling to other replicas (as upstream's `UPDATE_TASK`).
    update_task: bool


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = Env(environ)
    settings = Settings(
        database_url=env.secret("DATABASE_URL"),
        nats_url=env.str("NATS_URL"),
        nats_password=nats_auth.load_password(env, nats_auth.TASKS),
        bind_host=env.str("BIND_HOST", "127.0.0.1"),
        metrics_port=env.int("TASKS_METRICS_PORT", 9104),
        log_level=env.str("LOG_LEVEL", "INFO"),
        fetch_batch=env.int("TASKS_FETCH_BATCH", 16),
        fetch_timeout=env.float("TASKS_FETCH_TIMEOUT", 5.0),
        update_task=env.bool("UPDATE_TASK", True),
    )
    env.check(service="tasks")
    return settings
