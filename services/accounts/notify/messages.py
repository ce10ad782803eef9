"""What each event tells whom: the notification (type, title, content with `{{value}}`
placeholders, values) built from a JetStream event, as upstream's webhook payload carries it."""

from __future__ import annotations

import html
from dataclasses import dataclass

from veloera.accounts.v1 import events_pb2 as accounts_events
from veloera.billing.v1 import events_pb2 as billing_events

from services.shared import subjects

# Types as upstream names them (`dto/notify.go`); they are the limiter's buckets too.
QUOTA_EXCEED = "quota_exceed"
CHANNEL_UPDATE = "channel_update"
PLACEHOLDER = "{{value}}"
MAX_TYPE = 64


@dataclass(frozen=True, slots=True)
class Notification:
    type: str
    title: str
    content: str
    values: tuple[str, ...]
    timestamp: int  # Unix seconds of the event

    def text(self) -> str:
        """The content with its placeholders filled in order (plain text)."""
        return fill(self.content, self.values)

    def html(self) -> str:
        """The content as an email body: placeholders filled with escaped values."""
        escaped = tuple(html.escape(value) for value in self.values)
        body = fill(html.escape(self.content).replace("&lt;br/&gt;", "<br/>"), escaped)
        return f"<p>{body}</p>"


@dataclass(frozen=True, slots=True)
class Event:
    """A decoded event: who it is for (a user id, or 0 for the admins) and what it says."""

    user_id: int  # 0: root and the admins
    notification: Notification


def fill(content: str, values: tuple[str, ...]) -> str:
    parts = content.split(PLACEHOLDER)
    out = [parts[0]]
    for index, part in enumerate(parts[1:]):
        out.append(values[index] if index < len(values) else PLACEHOLDER)
        out.append(part)
    return "".join(out)


def decode(subject: str, data: bytes, *, server_address: str) -> Event | None:
    """The event a message stands for; None for a subject this worker does not deliver.
    Raises google.protobuf DecodeError (or ValueError) for a malformed payload."""
    if subject == subjects.QUOTA_WARNING_SUBJECT:
        return quota_warning(billing_events.QuotaWarningEvent.FromString(data), server_address)
    if subject == subjects.CHANNEL_STATE_SUBJECT:
        return channel_state(accounts_events.ChannelStateEvent.FromString(data))
    if subject == subjects.USER_NOTIFICATION_SUBJECT:
        return user_notification(accounts_events.UserNotification.FromString(data))
    return None


def quota_warning(event: billing_events.QuotaWarningEvent, server_address: str) -> Event:
    """Upstream's "your quota is about to run out", with the console's wallet page to top up."""
    link = f"{server_address.rstrip('/')}/app/wallet" if server_address else "/app/wallet"
    return Event(
        user_id=event.user_id,
        notification=Notification(
            type=QUOTA_EXCEED,
            title="Your quota is about to run out",
            content=(
                f"Your remaining quota is {PLACEHOLDER}, below your reminder threshold of "
                f"{PLACEHOLDER}. Top up to keep your requests working: {PLACEHOLDER}"
            ),
            values=(str(event.balance), str(event.threshold), link),
            timestamp=event.occur_time,
        ),
    )


def channel_state(event: accounts_events.ChannelStateEvent) -> Event:
    """Upstream notifies root when a channel is disabled or enabled automatically."""
    state = "enabled" if event.enabled else "disabled"
    subject = f"Channel {PLACEHOLDER} (#{PLACEHOLDER})"
    values: list[str] = [event.channel_name, str(event.channel_id)]
    if event.key_id:
        subject = f"Key #{PLACEHOLDER} of channel {PLACEHOLDER} (#{PLACEHOLDER})"
        values.insert(0, str(event.key_id))
    values.append(event.reason or "no reason given")
    title = f"Channel {event.channel_name} (#{event.channel_id}) was {state}"
    return Event(
        user_id=0,
        notification=Notification(
            type=CHANNEL_UPDATE,
            title=title,
            content=f"{subject} was {state} automatically. Reason: {PLACEHOLDER}",
            values=tuple(values),
            timestamp=event.occur_time,
        ),
    )


def user_notification(event: accounts_events.UserNotification) -> Event:
    """Any service's notification for one user; its type is its own limiter bucket."""
    kind = event.type.strip()
    if event.user_id <= 0 or not kind or len(kind) > MAX_TYPE or not event.title.strip():
        raise ValueError("a user notification needs a user id, a type and a title")
    return Event(
        user_id=event.user_id,
        notification=Notification(
            type=kind,
            title=event.title,
            content=event.content,
            values=tuple(event.values),
            timestamp=event.occur_time,
        ),
    )
