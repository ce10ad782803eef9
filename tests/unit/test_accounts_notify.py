"""Notifications: the webhook payload and signature, the messages built from events, the
outbound-URL guard of webhooks, the retry schedule and the settings."""

from __future__ import annotations

import hashlib
import hmac
import json

import aiohttp
import pytest
from veloera.accounts.v1 import events_pb2 as accounts_events
from veloera.billing.v1 import events_pb2 as billing_events

from services.accounts import user_settings
from services.accounts.notify import delivery, messages, recipients
from services.accounts.notify.worker import NotifyConfig
from services.accounts.settings import notify_config
from services.shared import subjects
from services.shared.config import ConfigError, Env
from services.shared.errors import InvalidArgument

NOTE = messages.Notification(
    type="task_failed",
    title="Task failed",
    content="Task {{value}} failed: <{{value}}>",
    values=("t-1", "a & b"),
    timestamp=1_700_000_000,
)


def test_the_payload_has_upstreams_fields_and_the_signature_is_an_hmac_of_the_body() -> None:
    body = delivery.payload(NOTE)
    assert json.loads(body) == {
        "type": "task_failed",
        "title": "Task failed",
        "content": "Task {{value}} failed: <{{value}}>",
        "values": ["t-1", "a & b"],
        "timestamp": 1_700_000_000,
    }
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert delivery.signature("s3cret", body) == expected


def test_placeholders_are_filled_in_order_and_escaped_in_email() -> None:
    assert NOTE.text() == "Task t-1 failed: <a & b>"
    assert NOTE.html() == "<p>Task t-1 failed: &lt;a &amp; b&gt;</p>"
    assert messages.fill("{{value}} and {{value}}", ("one",)) == "one and {{value}}"


def test_events_become_notifications_for_their_recipients() -> None:
    warning = billing_events.QuotaWarningEvent(user_id=7, balance=900, threshold=1000, occur_time=5)
    event = messages.decode(
        subjects.QUOTA_WARNING_SUBJECT,
        warning.SerializeToString(),
        server_address="https://gw.example/",
    )
    assert event is not None and event.user_id == 7
    assert event.notification.type == "quota_exceed"
    assert event.notification.values == ("900", "1000", "https://gw.example/app/wallet")
    assert event.notification.timestamp == 5

    state = accounts_events.ChannelStateEvent(
        channel_id=3, key_id=9, channel_name="main", enabled=False, reason="status 401"
    )
    event = messages.decode(
        subjects.CHANNEL_STATE_SUBJECT, state.SerializeToString(), server_address=""
    )
    assert event is not None and event.user_id == 0  # the admins
    assert event.notification.title == "Channel main (#3) was disabled"
    assert event.notification.text() == (
        "Key #9 of channel main (#3) was disabled automatically. Reason: status 401"
    )
    assert messages.decode(subjects.USAGE_SUBJECT, b"", server_address="") is None


@pytest.mark.parametrize(
    "event",
    [
        accounts_events.UserNotification(type="task_failed", title="x"),
        accounts_events.UserNotification(user_id=1, title="x"),
        accounts_events.UserNotification(user_id=1, type="task_failed"),
        accounts_events.UserNotification(user_id=1, type="t" * 65, title="x"),
    ],
)
def test_a_user_notification_needs_a_user_a_type_and_a_title(
    event: accounts_events.UserNotification,
) -> None:
    with pytest.raises(ValueError):
        messages.decode(
            subjects.USER_NOTIFICATION_SUBJECT, event.SerializeToString(), server_address=""
        )


def test_recipients_follow_the_users_choice() -> None:
    def row(setting: object, email: str = "") -> dict[str, object]:
        return {"id": 4, "email": email, "setting": json.dumps(setting)}

    assert recipients.recipient(row({}, "a@x.example")) == recipients.Recipient(
        4, "email", "a@x.example"
    )
    chosen = row({"notify_type": "email", "notification_email": "n@x.example"}, "a@x.example")
    assert recipients.recipient(chosen) == recipients.Recipient(4, "email", "n@x.example")
    hook = row(
        {"notify_type": "webhook", "webhook_url": "https://h.example", "webhook_secret": "whsec-42"}
    )
    target = recipients.recipient(hook)
    assert target == recipients.Recipient(4, "webhook", "https://h.example", "whsec-42")
    assert "whsec-42" not in repr(target)
    assert recipients.recipient(row({})) is None  # no address at all
    assert recipients.recipient({"id": 4, "email": "", "setting": "not json"}) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "https://10.0.0.5/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://2130706433/",
    ],
)
def test_webhooks_at_private_addresses_are_refused_unless_allowed(url: str) -> None:
    setting = json.dumps({"notify_type": "webhook", "webhook_url": url})
    with pytest.raises(InvalidArgument, match="WEBHOOK_PRIVATE_ADDRESSES=true"):
        user_settings.check_setting(setting)
    assert url in user_settings.check_setting(setting, allow_private=True)


def test_a_webhook_url_with_a_bad_port_is_refused() -> None:
    setting = json.dumps({"notify_type": "webhook", "webhook_url": "http://h.example:99999/"})
    with pytest.raises(InvalidArgument, match="must be an http"):
        user_settings.check_setting(setting)


async def test_a_private_webhook_is_not_connected_to_when_not_allowed() -> None:
    target = recipients.Recipient(1, "webhook", "http://127.0.0.1:9/hook", "k")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(delivery.DeliveryFailed) as failed:
            await delivery.post_webhook(session, target, NOTE, timeout=1.0, allow_private=False)
    assert failed.value.retry is False


def test_retries_back_off_exponentially_up_to_ten_minutes() -> None:
    config = NotifyConfig(retry_seconds=10.0)
    assert [config.retry_delay(n) for n in (1, 2, 3, 4)] == [10.0, 20.0, 40.0, 80.0]
    assert config.retry_delay(30) == 600.0


def test_the_limit_defaults_to_upstreams_and_bad_values_fail_fast() -> None:
    env = Env({})
    config = notify_config(env)
    assert (config.limit_count, config.limit_minutes) == (2, 10)
    assert config.webhook_timeout == 5.0 and not config.allow_private
    bad = Env({"NOTIFICATION_LIMIT_DURATION_MINUTE": "0", "NOTIFY_MAX_ATTEMPTS": "0"})
    notify_config(bad)
    with pytest.raises(ConfigError, match="NOTIFICATION_LIMIT_DURATION_MINUTE"):
        bad.check(service="accounts")
