"""A loopback SMTP server that keeps what it receives."""

from __future__ import annotations

import email
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from services.cli.infra import free_port


@dataclass
class Mailbox:
    """What the loopback SMTP server received, in order."""

    messages: list[Mail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw)
        part = parsed.get_payload(decode=True)
        body = part.decode() if isinstance(part, bytes) else str(parsed.get_payload())
        mail = Mail(
            to=[str(rcpt) for rcpt in envelope.rcpt_tos],
            subject=str(parsed["Subject"]),
            body=body,
        )
        with self.lock:
            self.messages.append(mail)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Mail]:
        with self.lock:
            return [mail for mail in self.messages if address in mail.to]


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@dataclass(frozen=True, slots=True)
class Mail:
    to: list[str]
    subject: str
    body: str
