"""NATS users and what each may publish and subscribe to: the one place this table lives.

Each service connects as its own user (its name) with the password in NATS_PASSWORD_<SERVICE>.
`veloera up` writes these users into the embedded server's configuration; compose mounts the same
table (deploy/nats/nats.conf, checked against this module by a test). The relay may store
settlements and read change events; it may not announce account or price changes, usage or quota
events, nor manage JetStream beyond ensuring the streams exist.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from services.shared import subjects
from services.shared.config import Env, Secret

ACCOUNTS = "accounts"
BILLING = "billing"
TASKS = "tasks"
RELAY = "relay"
WEB = "web"  # the console: reads task state (TASKS_FETCH) for the task and drawing logs
# Operator tools and the test suite: no restriction. `veloera up` does not create this user.
ADMIN = "admin"

# Request/reply (JetStream API calls, JetStream publishes with acks) answers on _INBOX.
_REPLIES = "_INBOX.>"
# Every service ensures the streams exist at start (natsutil.ensure_streams).
_ENSURE_STREAMS = [
    "$JS.API.INFO",
    "$JS.API.STREAM.INFO.*",
    "$JS.API.STREAM.CREATE.*",
    "$JS.API.STREAM.UPDATE.*",
]


def _consumer(stream: str, durable: str) -> list[str]:
    """Create, inspect and pull from one durable consumer, and ack its messages."""
    return [
        f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
    ]


# user -> (may publish, may subscribe); None: unrestricted.
PERMISSIONS: dict[str, tuple[list[str], list[str]] | None] = {
    ACCOUNTS: (
        [
            *_ENSURE_STREAMS,
            *_consumer(subjects.EVENTS_STREAM, subjects.NOTIFY_DURABLE),
            subjects.ACCOUNTS_CHANGED,
            subjects.CHANNEL_STATE_SUBJECT,
        ],
        [_REPLIES],
    ),
    BILLING: (
        [
            *_ENSURE_STREAMS,
            *_consumer(subjects.SETTLEMENTS_STREAM, subjects.SETTLEMENTS_DURABLE),
            subjects.PRICES_CHANGED,
            subjects.USAGE_SUBJECT,
            subjects.QUOTA_WARNING_SUBJECT,
            subjects.USER_NOTIFICATION_SUBJECT,
        ],
        [_REPLIES, subjects.PRICES_CHANGED],
    ),
    TASKS: (
        [
            *_ENSURE_STREAMS,
            *_consumer(subjects.TASKS_STREAM, subjects.TASKS_DURABLE),
            subjects.USER_NOTIFICATION_SUBJECT,
            subjects.TASK_REFUNDS_SUBJECT,
            subjects.TASK_POLL,
            subjects.CHANNEL_PROBE,
            _REPLIES,  # answers to TASKS_FETCH
        ],
        [_REPLIES, subjects.TASKS_FETCH],
    ),
    RELAY: (
        [
            *_ENSURE_STREAMS,
            subjects.SETTLEMENTS_SUBJECT,
            subjects.RELEASES_SUBJECT,
            subjects.SETTLE_BATCHES_SUBJECT,
            subjects.TASK_SUBMITTED_SUBJECT,
            subjects.TASKS_FETCH,
            _REPLIES,  # answers to TASK_POLL and CHANNEL_PROBE
        ],
        [
            _REPLIES,
            subjects.ACCOUNTS_CHANGED,
            subjects.PRICES_CHANGED,
            subjects.TASK_POLL,
            subjects.CHANNEL_PROBE,
        ],
    ),
    WEB: ([subjects.TASKS_FETCH, subjects.CHANNEL_PROBE], [_REPLIES]),
    ADMIN: None,
}
SERVICE_USERS = (ACCOUNTS, BILLING, TASKS, RELAY, WEB)


def password_variable(user: str) -> str:
    return f"NATS_PASSWORD_{user.upper()}"


def load_password(env: Env, user: str) -> Secret:
    """The service's NATS password (optional: unset connects without a user, e.g. when NATS_URL
    carries credentials for a server configured elsewhere)."""
    return env.secret(password_variable(user), "")


def server_users(passwords: Mapping[str, str]) -> list[dict[str, Any]]:
    """The `authorization.users` block of a nats-server configuration for these users."""
    users: list[dict[str, Any]] = []
    for user, password in passwords.items():
        entry: dict[str, Any] = {"user": user, "password": password}
        allowed = PERMISSIONS[user]
        if allowed is not None:
            publish, subscribe = allowed
            entry["permissions"] = {
                "publish": {"allow": publish},
                "subscribe": {"allow": subscribe},
            }
        users.append(entry)
    return users


def deploy_config() -> str:
    """deploy/nats/nats.conf: the service users with each password read by nats-server from its
    environment (NATS_PASSWORD_<SERVICE>), for compose and Kubernetes."""
    passwords = {user: f"${password_variable(user)}" for user in SERVICE_USERS}
    text = json.dumps({"authorization": {"users": server_users(passwords)}}, indent=2)
    for reference in passwords.values():
        text = text.replace(f'"{reference}"', reference)  # a variable reference, not a string
    header = (
        "# Generated from services/shared/nats_auth.py (tests check it matches); do not edit.\n"
    )
    return header + text + "\n"
