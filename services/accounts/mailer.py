"""Sends mail over SMTP with the SMTP* options (aiosmtplib), bounded by a timeout."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

import aiosmtplib

from services.shared.errors import FailedPrecondition

logger = logging.getLogger(__name__)

IMPLICIT_TLS_PORT = 465


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    server: str
    port: int
    ssl: bool
    account: str
    sender: str
    token: str
    system_name: str

    @classmethod
    def from_options(cls, options: dict[str, str]) -> SmtpConfig:
        server = options.get("SMTPServer", "").strip()
        if not server:
            raise FailedPrecondition(
                "SMTP is not configured by the administrator (SMTPServer is empty)",
                code="smtp_not_configured",
            )
        try:
            port = int(options.get("SMTPPort") or 587)
        except ValueError:
            port = 587
        account = options.get("SMTPAccount", "").strip()
        return cls(
            server=server,
            port=port,
            ssl=options.get("SMTPSSLEnabled") == "true" or port == IMPLICIT_TLS_PORT,
            account=account,
            sender=options.get("SMTPFrom", "").strip() or account or f"no-reply@{server}",
            token=options.get("SMTPToken", ""),
            system_name=options.get("SystemName", "") or "Veloera",
        )


async def send_mail(
    config: SmtpConfig, *, to: str, subject: str, html: str, timeout: float
) -> None:
    """Deliver one HTML message; FailedPrecondition (never the credentials) when SMTP fails."""
    message = EmailMessage()
    message["From"] = formataddr((config.system_name, config.sender))
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=config.sender.rpartition("@")[2] or None)
    message.set_content(html, subtype="html")
    try:
        await aiosmtplib.send(
            message,
            hostname=config.server,
            port=config.port,
            username=config.account or None,
            password=config.token if config.account else None,
            use_tls=config.ssl,
            timeout=timeout,
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        logger.warning(
            "cannot send mail via %s:%d: %s", config.server, config.port, type(exc).__name__
        )
        raise FailedPrecondition(
            f"cannot send the email: the SMTP server failed ({type(exc).__name__})",
            code="smtp_failed",
        ) from None
