"""NATS subjects and JetStream stream names: the only place these strings are spelled."""

from __future__ import annotations

# Core NATS (fire-and-forget cache invalidation; payload: accounts.v1.ChangeEvent).
ACCOUNTS_CHANGED = "veloera.accounts.changed"
# A pricing option changed (payload: the option key, UTF-8): every billing replica reloads its
# price table and every relay retires its leases, so the next request uses the new price.
PRICES_CHANGED = "veloera.billing.prices_changed"

# JetStream streams and their subjects.
SETTLEMENTS_STREAM = "SETTLEMENTS"
SETTLEMENTS_SUBJECT = "veloera.billing.settlements"  # billing.v1.DeferredSettlement
RELEASES_SUBJECT = "veloera.billing.releases"  # billing.v1.DeferredRelease
SETTLE_BATCHES_SUBJECT = "veloera.billing.settle_batches"  # billing.v1.DeferredBatch
TASK_REFUNDS_SUBJECT = "veloera.billing.task_refunds"  # tasks.v1.TaskRefund
SETTLEMENTS_DURABLE = "billing-settlements"

EVENTS_STREAM = "EVENTS"
USAGE_SUBJECT = "veloera.events.usage"  # billing.v1.UsageEvent
QUOTA_WARNING_SUBJECT = "veloera.events.quota_warning"  # billing.v1.QuotaWarningEvent
CHANNEL_STATE_SUBJECT = "veloera.events.channel_state"  # accounts.v1.ChannelStateEvent
# Any service may ask for a user to be notified (task failures, ...): accounts.v1.UserNotification.
USER_NOTIFICATION_SUBJECT = "veloera.events.user_notification"
# Accounts' notification worker: one durable pull consumer over the three notification subjects.
NOTIFY_DURABLE = "accounts-notify"
NOTIFY_SUBJECTS = [QUOTA_WARNING_SUBJECT, CHANNEL_STATE_SUBJECT, USER_NOTIFICATION_SUBJECT]

TASKS_STREAM = "TASKS"
TASK_SUBMITTED_SUBJECT = "veloera.tasks.submitted"  # tasks.v1.TaskSubmitted
TASKS_DURABLE = "tasks-worker"

# Request/reply served by the tasks service (tasks.v1.FetchTasksRequest -> FetchTasksResponse).
TASKS_FETCH = "veloera.tasks.fetch"
# Request/reply served by the relay, which holds the channel keys (tasks.v1.PollTasksRequest ->
# PollTasksResponse): the tasks service's poller asks an upstream about its tasks through it.
TASK_POLL = "veloera.relay.task_poll"
# Request/reply served by the relays (relay.v1.ChannelProbeRequest -> ChannelProbeResponse):
# channel tests, balance queries and model lists for the console and the tasks service.
CHANNEL_PROBE = "veloera.relay.channel_probe"

# Every stream with its subjects; ensured (created or updated) at start by each service.
STREAMS: dict[str, list[str]] = {
    SETTLEMENTS_STREAM: [
        SETTLEMENTS_SUBJECT,
        RELEASES_SUBJECT,
        SETTLE_BATCHES_SUBJECT,
        TASK_REFUNDS_SUBJECT,
    ],
    EVENTS_STREAM: [USAGE_SUBJECT, *NOTIFY_SUBJECTS],
    TASKS_STREAM: [TASK_SUBMITTED_SUBJECT],
}
