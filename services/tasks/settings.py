"""Settings of the tasks worker, read once from the environment."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from services.shared import internal_auth, nats_auth
from services.shared.config import Env, Secret
from services.shared.internal_auth import Credential


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
    poll_interval: float  # TASKS_POLL_INTERVAL: seconds between polls of one task
    poll_lease: float  # TASKS_POLL_LEASE: seconds a claimed task belongs to one replica
    poll_batch: int
    poll_request_timeout: float
    task_timeout: float  # TASK_TIMEOUT: an unfinished task older than this fails
    # Channel health (upstream CHANNEL_TEST_FREQUENCY / CHANNEL_UPDATE_FREQUENCY, in minutes; 0:
    # off): test every channel / refresh every balance, in one tasks replica at a time.
    channel_test_minutes: float = 0.0
    channel_update_minutes: float = 0.0
    accounts_addr: str = "127.0.0.1:50051"
    # INTERNAL_TOKEN_TASKS: this service's credential with accounts (needed for channel health).
    credential: Credential | None = None
    channel_probe_timeout: float = 30.0
    polling_interval: float = 0.0  # POLLING_INTERVAL: pause between channels in a scheduled run


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
        poll_interval=env.float("TASKS_POLL_INTERVAL", 15.0),
        poll_lease=env.float("TASKS_POLL_LEASE", 60.0),
        poll_batch=env.int("TASKS_POLL_BATCH", 500),
        poll_request_timeout=env.float("TASKS_POLL_TIMEOUT", 20.0),
        task_timeout=env.float("TASK_TIMEOUT", 3600.0),
        channel_test_minutes=_duration(env, "CHANNEL_TEST_FREQUENCY", "minutes"),
        channel_update_minutes=_duration(env, "CHANNEL_UPDATE_FREQUENCY", "minutes"),
        accounts_addr=env.str("ACCOUNTS_ADDR", "127.0.0.1:50051"),
        credential=_credential(env),
        channel_probe_timeout=max(env.float("CHANNEL_PROBE_TIMEOUT", 30.0), 0.1),
        polling_interval=_duration(env, "POLLING_INTERVAL", "seconds"),
    )
    if (settings.channel_test_minutes or settings.channel_update_minutes) and not (
        settings.credential
    ):
        env.fail(
            "CHANNEL_TEST_FREQUENCY and CHANNEL_UPDATE_FREQUENCY need INTERNAL_TOKEN_TASKS "
            "(the tasks service's credential with accounts)"
        )
    env.check(service="tasks")
    return settings


def _duration(env: Env, name: str, unit: str) -> float:
    """A non-negative duration in `unit` (fractions allowed; unset: 0, which means off for
    the frequencies)."""
    value = env.float(name, 0.0)
    if not math.isfinite(value) or value < 0:
        env.fail(f"{name} must be a number of {unit}, 0 or more")
        return 0.0
    return value


def _credential(env: Env) -> Credential | None:
    """INTERNAL_TOKEN_TASKS when set (optional while no channel job is scheduled)."""
    name = internal_auth.token_variable(internal_auth.TASKS)
    if not env.str(name, ""):
        return None
    return internal_auth.load_credential(env, internal_auth.TASKS)
