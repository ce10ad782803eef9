"""Delivery of one notification to one recipient: a signed webhook POST or an email.

Webhook (upstream `service/webhook.go`): POST of the JSON body
`{"type", "title", "content", "values", "timestamp"}`; with a secret, `X-Webhook-Signature` is
the hex HMAC-SHA256 of the exact body bytes under the secret. The body carries the event's
Unix `timestamp` (also sent as `X-Webhook-Timestamp`), so the signature covers it and a
receiver can refuse stale or replayed deliveries. Redirects are not followed, and unless
WEBHOOK_PRIVATE_ADDRESSES is on a URL whose host is (or resolves to) a loopback or private
address is never connected to.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from urllib.parse import urlsplit

import aiohttp
import orjson

from services.accounts.mailer import SmtpConfig, send_mail
from services.accounts.notify.messages import Notification
from services.accounts.notify.recipients import WEBHOOK, Recipient
from services.shared.addresses import is_private_host
from services.shared.errors import FailedPrecondition
from services.shared.resolver import PublicResolver

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Webhook-Signature"
TIMESTAMP_HEADER = "X-Webhook-Timestamp"
_RETRYABLE_STATUSES = frozenset({408, 425, 429})


class DeliveryFailed(Exception):
    """A delivery that did not happen; `retry` says whether trying again later may help."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.retry = retry


def payload(notification: Notification) -> bytes:
    return orjson.dumps(
        {
            "type": notification.type,
            "title": notification.title,
            "content": notification.content,
            "values": list(notification.values),
            "timestamp": notification.timestamp,
        }
    )


def signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def open_session(*, allow_private: bool) -> aiohttp.ClientSession:
    """The worker's webhook session; names resolving to private addresses are refused unless
    the operator allows them."""
    connector = aiohttp.TCPConnector(
        limit=64, ttl_dns_cache=60, resolver=None if allow_private else PublicResolver()
    )
    return aiohttp.ClientSession(connector=connector, trust_env=False)


async def post_webhook(
    session: aiohttp.ClientSession,
    recipient: Recipient,
    notification: Notification,
    *,
    timeout: float,
    allow_private: bool,
) -> None:
    host = urlsplit(recipient.address).hostname or ""
    if not allow_private and is_private_host(host):
        raise DeliveryFailed("the webhook points at a private or loopback address", retry=False)
    body = payload(notification)
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(notification.timestamp),
    }
    if recipient.secret:
        headers[SIGNATURE_HEADER] = signature(recipient.secret, body)
    try:
        async with session.post(
            recipient.address,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as reply:
            status = reply.status
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise DeliveryFailed(f"webhook unreachable ({type(exc).__name__})", retry=True) from None
    if 200 <= status < 300:
        return
    retry = status >= 500 or status in _RETRYABLE_STATUSES
    raise DeliveryFailed(f"webhook answered {status}", retry=retry)


async def send_email(
    recipient: Recipient, notification: Notification, options: dict[str, str], *, timeout: float
) -> None:
    try:
        config = SmtpConfig.from_options(options)
        await send_mail(
            config,
            to=recipient.address,
            subject=notification.title,
            html=notification.html(),
            timeout=timeout,
        )
    except FailedPrecondition as exc:
        # SMTP unset waits for an operator, not a retry; a failing server may recover.
        raise DeliveryFailed(str(exc), retry=exc.code != "smtp_not_configured") from None


async def deliver(
    session: aiohttp.ClientSession,
    recipient: Recipient,
    notification: Notification,
    options: dict[str, str],
    *,
    webhook_timeout: float,
    smtp_timeout: float,
    allow_private: bool,
) -> None:
    """Deliver or raise DeliveryFailed."""
    if recipient.channel == WEBHOOK:
        await post_webhook(
            session, recipient, notification, timeout=webhook_timeout, allow_private=allow_private
        )
    else:
        await send_email(recipient, notification, options, timeout=smtp_timeout)
