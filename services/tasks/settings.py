"""Settings of the tasks worker, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.shared import nats_auth
from services.shared.config import Env, Secret


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    nats_url: str
    nats_password: Secret  # NATS_PASSWORD_TASKS: this service connects as user "tasks"
    bind_host: str
    metrics_port: int
    log_level: str
    fetch_batch: int
    fetch_timeout: float
    # UPDATE_TASK=false leaves polling to other replicas (as upstream's `UPDATE_TASK`).
    update_task: bool
    poll_interval: float  # TASKS_POLL_INTERVAL: seconds between polls of one task
    poll_lease: float  # TASKS_POLL_LEASE: seconds a claimed task belongs to one replica
    poll_batch: int
    poll_request_timeout: float
    task_timeout: float  # TASK_TIMEOUT: an unfinished task older than this fails


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = Env(environ)
    settings = Settings(
        database_url=env.str("DATABASE_URL"),
        nats_url=env.str("NATS_URL"),
        nats_password=nats_auth.load_password(env, nats_auth.TASKS),
        bind_host=env.str("BIND_HOST", "127.0.0.1"),
        metrics_port=env.int("TASKS_METRICS_PORT", 9104),
        log_level=env.str("LOG_LEVEL", "INFO"),
        fetch_batch=env.int("TASKS_FETCH_BATCH", 16),
        fetch_timeout=env.float("TASKS_FETCH_TIMEOUT", 5.0),
        update_task=env.bool("UPDATE_TASK", True),
        poll_interval=env.float("TASKS_POLL_INTERVAL", 15.0),
        poll_lease=env.float("TASKS_POLL_LEASE", 60.0),
        poll_batch=env.int("TASKS_POLL_BATCH", 500),
        poll_request_timeout=env.float("TASKS_POLL_TIMEOUT", 20.0),
        task_timeout=env.float("TASK_TIMEOUT", 3600.0),
    )
    env.check(service="tasks")
    return settings
