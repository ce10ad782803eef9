"""The tasks service's channel-health settings (CHANNEL_TEST_FREQUENCY, CHANNEL_UPDATE_FREQUENCY
in minutes as upstream; its accounts credential)."""

from __future__ import annotations

import pytest

from services.shared.config import ConfigError
from services.tasks.settings import load_settings

BASE = {"DATABASE_URL": "postgresql://x", "NATS_URL": "nats://y"}
TOKEN = "t" * 40


def test_channel_jobs_are_off_by_default_and_need_no_credential() -> None:
    settings = load_settings(BASE)
    assert settings.channel_test_minutes == 0 and settings.channel_update_minutes == 0
    assert settings.credential is None and settings.polling_interval == 0


def test_frequencies_in_minutes_with_the_tasks_credential() -> None:
    settings = load_settings(
        {**BASE, "CHANNEL_TEST_FREQUENCY": "10", "CHANNEL_UPDATE_FREQUENCY": "0.5",
         "INTERNAL_TOKEN_TASKS": TOKEN, "POLLING_INTERVAL": "2"}
    )  # fmt: skip
    assert (settings.channel_test_minutes, settings.channel_update_minutes) == (10.0, 0.5)
    assert settings.credential is not None and settings.credential.caller == "tasks"
    assert TOKEN not in repr(settings) and settings.polling_interval == 2.0


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"CHANNEL_TEST_FREQUENCY": "5"}, "need INTERNAL_TOKEN_TASKS"),
        ({"CHANNEL_UPDATE_FREQUENCY": "-1"}, "CHANNEL_UPDATE_FREQUENCY must be a number"),
        ({"CHANNEL_TEST_FREQUENCY": "nan", "INTERNAL_TOKEN_TASKS": TOKEN}, "must be a number"),
        ({"POLLING_INTERVAL": "inf"}, "POLLING_INTERVAL must be a number of seconds"),
        ({"INTERNAL_TOKEN_TASKS": "short"}, "at least 32 characters"),
    ],
)
def test_bad_values_fail_fast(extra: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_settings({**BASE, **extra})
