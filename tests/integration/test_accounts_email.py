"""Email through the console API with a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
import pytest_asyncio

from services.cli.infra import free_port
from tests.support.helpers import Console, create_user, login, root_console, unique_name
from tests.support.mail import Mail, Mailbox
from tests.support.mail import mailbox as mailbox
from tests.support.options import restored_options

pytestmark = pytest.mark.integration

SERVER_ADDRESS = "https://gateway.example.test"
PASSWORD = "password123"


class Infra(Protocol):
    database_url: str
    nats_url: str
    work_dir: Path


async def _set(root: Console, key: str, value: Any) -> dict[str, Any]:
    return await root.envelope("PUT", "/api/option/", json={"key": key, "value": value})


async def _must_set(root: Console, key: str, value: Any) -> None:
    body = await _set(root, key, value)
    assert body["success"], body["message"]


@pytest_asyncio.fixture(loop_scope="session")
async def root(web_url: str, mailbox: tuple[Mailbox, int]) -> AsyncIterator[Console]:
    console = await root_console(web_url)
    await _must_set(console, "SMTPServer", "127.0.0.1")
    await _must_set(console, "SMTPPort", mailbox[1])
    await _must_set(console, "SMTPFrom", "noreply@example.test")
    await _must_set(console, "SMTPSSLEnabled", "false")
    await _must_set(console, "ServerAddress", SERVER_ADDRESS)
    yield console
    await console.aclose()


@pytest.fixture
def inbox(mailbox: tuple[Mailbox, int]) -> Mailbox:
    return mailbox[0]


def _address(domain: str = "example.com") -> str:
    return f"{uuid.uuid4().hex[:12]}@{domain}"


def _code(mail: Mail) -> str:
    found = re.search(r"<strong>(\d{6})</strong>", mail.body)
    assert found, "no code in the mail"
    return found.group(1)


def _link(mail: Mail) -> str:
    found = re.search(r'href="([^"]+)"', mail.body)
    assert found, "no link in the mail"
    return html.unescape(found.group(1))


async def _public(web_url: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=web_url, timeout=30.0) as client:
        reply = await client.request(method, path, **kwargs)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def _send_code(web_url: str, address: str) -> dict[str, Any]:
    return await _public(web_url, "GET", "/api/verification", params={"email": address})


async def _refused(body: dict[str, Any], *fragments: str) -> str:
    assert body["success"] is False, body
    message: str = body["message"]
    for fragment in fragments:
        assert fragment in message.lower(), message
    return message


# ---------------------------------------------------------------- verification and binding


async def test_a_mailed_code_binds_the_email_once(
    web_url: str, root: Console, inbox: Mailbox
) -> None:
    user, _ = await create_user(root, quota=0)
    other, _ = await create_user(root, quota=0)
    address = _address()
    try:
        body = await _send_code(web_url, address)
        assert body["success"], body["message"]
        [mail] = inbox.to(address)
        assert "verification" in mail.subject.lower()
        code = _code(mail)
        wrong = "000000" if code != "000000" else "111111"

        bad = await user.envelope(
            "GET", "/api/oauth/email/bind", params={"email": address, "code": wrong}
        )
        await _refused(bad, "wrong or has expired")
        assert (await user.call("GET", "/api/user/self"))["email"] == ""
        await _refused(
            await user.envelope("GET", "/api/oauth/email/bind", params={"email": address}),
            "code is required",
        )

        await user.call("GET", "/api/oauth/email/bind", params={"email": address, "code": code})
        assert (await user.call("GET", "/api/user/self"))["email"] == address
        # The code is single use, and the address now belongs to the first user.
        again = await other.envelope(
            "GET", "/api/oauth/email/bind", params={"email": address, "code": code}
        )
        await _refused(again, "wrong or has expired")
        await _refused(await _send_code(web_url, address), "already in use")
        assert len(inbox.to(address)) == 1
    finally:
        await user.aclose()
        await other.aclose()


async def test_binding_requires_a_login(web_url: str, root: Console) -> None:
    async with httpx.AsyncClient(base_url=web_url, timeout=10.0) as client:
        reply = await client.get(
            "/api/oauth/email/bind", params={"email": _address(), "code": "123456"}
        )
    assert reply.status_code == 401
    await _refused(reply.json(), "not logged in")


async def test_codes_are_stored_hashed_and_resends_are_limited(
    web_url: str, root: Console, inbox: Mailbox, infra: Infra
) -> None:
    address = _address()
    assert (await _send_code(web_url, address))["success"]
    code = _code(inbox.to(address)[0])
    await _refused(await _send_code(web_url, address), "recently", "retry in")
    assert len(inbox.to(address)) == 1
    conn = await asyncpg.connect(infra.database_url)
    try:
        rows = await conn.fetch(
            "SELECT code_hash, expires_at - created_at AS ttl FROM accounts.email_codes"
            " WHERE email = $1",
            address,
        )
    finally:
        await conn.close()
    assert len(rows) == 1
    assert code not in rows[0]["code_hash"]
    assert rows[0]["ttl"] == 600


async def test_wrong_guesses_burn_the_code(web_url: str, root: Console, inbox: Mailbox) -> None:
    user, _ = await create_user(root, quota=0)
    address = _address()
    try:
        assert (await _send_code(web_url, address))["success"]
        code = _code(inbox.to(address)[0])
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        for _ in range(5):
            body = await user.envelope(
                "GET", "/api/oauth/email/bind", params={"email": address, "code": wrong}
            )
            await _refused(body, "wrong or has expired")
        late = await user.envelope(
            "GET", "/api/oauth/email/bind", params={"email": address, "code": code}
        )
        await _refused(late, "wrong or has expired")
        assert (await user.call("GET", "/api/user/self"))["email"] == ""
    finally:
        await user.aclose()


async def test_bad_addresses_are_refused_without_mail(
    web_url: str, root: Console, inbox: Mailbox
) -> None:
    before = len(inbox.messages)
    await _refused(await _public(web_url, "GET", "/api/verification"), "email is required")
    await _refused(await _send_code(web_url, "not-an-address"), "invalid email")
    await _refused(await _send_code(web_url, f"{'x' * 60}@example.com"), "invalid email")
    assert len(inbox.messages) == before


async def test_domain_whitelist_and_alias_restriction(
    web_url: str, root: Console, accounts_addr: str, inbox: Mailbox
) -> None:
    before = len(inbox.messages)
    async with restored_options(web_url, accounts_addr):
        await _must_set(root, "EmailDomainWhitelist", "example.com,gmail.com")
        await _must_set(root, "EmailDomainRestrictionEnabled", "true")
        await _must_set(root, "EmailAliasRestrictionEnabled", "true")
        message = await _refused(await _send_code(web_url, _address("other.org")), "not allowed")
        assert "other.org" in message and "example.com" in message
        plus = f"{uuid.uuid4().hex[:8]}+promo@example.com"
        await _refused(await _send_code(web_url, plus), "alias")
        dotted_gmail = f"first.{uuid.uuid4().hex[:8]}@gmail.com"
        await _refused(await _send_code(web_url, dotted_gmail), "gmail")
        assert len(inbox.messages) == before
        dotted = f"first.{uuid.uuid4().hex[:8]}@example.com"
        assert (await _send_code(web_url, dotted))["success"]
        assert len(inbox.to(dotted)) == 1
        upper = f"{uuid.uuid4().hex[:8]}@EXAMPLE.COM"
        assert (await _send_code(web_url, upper))["success"]
        assert len(inbox.to(upper.lower())) == 1
    # With the restrictions off, other domains and aliases are accepted again.
    assert (await _send_code(web_url, _address("other.org")))["success"]


async def test_an_empty_whitelist_cannot_be_enforced(
    web_url: str, root: Console, accounts_addr: str
) -> None:
    async with restored_options(web_url, accounts_addr):
        await _must_set(root, "EmailDomainWhitelist", "")
        await _refused(await _set(root, "EmailDomainRestrictionEnabled", "true"))
        options = {o["key"]: o["value"] for o in await root.call("GET", "/api/option/")}
        assert options["EmailDomainRestrictionEnabled"] == "false"


async def test_an_unreachable_smtp_server_is_reported_and_stores_nothing(
    web_url: str, root: Console, accounts_addr: str, mailbox: tuple[Mailbox, int]
) -> None:
    address = _address()
    async with restored_options(web_url, accounts_addr):
        await _must_set(root, "SMTPPort", free_port())
        await _refused(await _send_code(web_url, address), "cannot send the email")
    # Nothing was stored, so the resend limit does not block the retry.
    assert (await _send_code(web_url, address))["success"]
    assert len(mailbox[0].to(address)) == 1


# ---------------------------------------------------------------- password reset


async def _user_with_email(root: Console) -> tuple[str, str, int]:
    username, address = unique_name(), _address()
    await root.call("POST", "/api/user/", json={"username": username, "password": PASSWORD})
    users = await root.call("GET", "/api/user/search", params={"keyword": username})
    user_id = int(users["items"][0]["id"])
    await root.call("PUT", "/api/user/", json={"id": user_id, "email": address})
    return username, address, user_id


async def _reset_link(web_url: str, inbox: Mailbox, address: str) -> tuple[str, str]:
    body = await _public(web_url, "GET", "/api/reset_password", params={"email": address})
    assert body["success"], body["message"]
    [mail] = inbox.to(address)
    link = _link(mail)
    assert link.startswith(f"{SERVER_ADDRESS}/user/reset?")
    query = parse_qs(urlsplit(link).query)
    assert query["email"] == [address]
    return query["token"][0], link


async def _login_ok(web_url: str, username: str, password: str) -> bool:
    body = await _public(
        web_url, "POST", "/api/user/login", json={"username": username, "password": password}
    )
    return bool(body["success"])


async def test_reset_link_sets_a_random_password_once(
    web_url: str, root: Console, inbox: Mailbox
) -> None:
    username, address, _ = await _user_with_email(root)
    session = await login(web_url, username, PASSWORD)
    try:
        token, _ = await _reset_link(web_url, inbox, address)
        wrong = await _public(
            web_url, "POST", "/api/user/reset", json={"email": address, "token": "x" * 32}
        )
        await _refused(wrong, "invalid, already used or expired")
        assert await _login_ok(web_url, username, PASSWORD)

        done = await _public(
            web_url, "POST", "/api/user/reset", json={"email": address, "token": token}
        )
        assert done["success"], done["message"]
        new_password = done["data"]
        assert isinstance(new_password, str) and len(new_password) == 12
        assert await _login_ok(web_url, username, new_password)
        assert not await _login_ok(web_url, username, PASSWORD)
        # Old sessions are revoked by the reset; the token works only once.
        assert (await session.envelope("GET", "/api/user/self"))["success"] is False
        reused = await _public(
            web_url, "POST", "/api/user/reset", json={"email": address, "token": token}
        )
        await _refused(reused, "already used")
        assert await _login_ok(web_url, username, new_password)
    finally:
        await session.aclose()


async def test_reset_accepts_a_chosen_password_and_validates_it(
    web_url: str, root: Console, inbox: Mailbox
) -> None:
    username, address, _ = await _user_with_email(root)
    token, _ = await _reset_link(web_url, inbox, address)
    short = await _public(
        web_url, "POST", "/api/user/reset",
        json={"email": address, "token": token, "password": "short"},
    )  # fmt: skip
    await _refused(short, "password must be")
    assert await _login_ok(web_url, username, PASSWORD)
    chosen = await _public(
        web_url, "POST", "/api/user/reset",
        json={"email": address, "token": token, "password": "chosen-pass-1"},
    )  # fmt: skip
    assert chosen["success"] and chosen["data"] == "chosen-pass-1"
    assert await _login_ok(web_url, username, "chosen-pass-1")


async def test_reset_does_not_reveal_unknown_addresses_and_refuses_missing_fields(
    web_url: str, root: Console, inbox: Mailbox
) -> None:
    address = _address()
    unknown = await _public(web_url, "GET", "/api/reset_password", params={"email": address})
    assert unknown["success"] is True  # the same answer as for a registered address
    assert inbox.to(address) == []
    missing = await _public(web_url, "POST", "/api/user/reset", json={"email": address})
    await _refused(missing, "email and token are required")


async def test_reset_answers_alike_when_the_mail_fails_or_is_asked_again(
    web_url: str, root: Console, accounts_addr: str, mailbox: tuple[Mailbox, int]
) -> None:
    _, known, _ = await _user_with_email(root)
    unknown = _address()
    async with restored_options(web_url, accounts_addr):
        await _must_set(root, "SMTPPort", free_port())  # nothing listens: every mail fails
        answers = [
            await _public(web_url, "GET", "/api/reset_password", params={"email": address})
            for address in (known, unknown)
        ]
    assert [a["success"] for a in answers] == [True, True]
    assert answers[0]["message"] == answers[1]["message"]
    # Asked twice within the resend interval: the known address is not told apart either.
    for _ in range(2):
        again = await _public(web_url, "GET", "/api/reset_password", params={"email": known})
        assert again["success"] is True
    assert len(mailbox[0].to(known)) == 1


async def test_reset_needs_a_server_address(
    web_url: str, root: Console, accounts_addr: str, inbox: Mailbox
) -> None:
    _, address, _ = await _user_with_email(root)
    async with restored_options(web_url, accounts_addr):
        await _must_set(root, "ServerAddress", "")
        body = await _public(web_url, "GET", "/api/reset_password", params={"email": address})
        await _refused(body, "serveraddress")
    assert inbox.to(address) == []


# ---------------------------------------------------------------- registration


async def test_registration_requires_a_valid_code_when_verification_is_on(
    web_url: str, root: Console, accounts_addr: str, inbox: Mailbox
) -> None:
    address = _address()
    username = unique_name()
    form = {"username": username, "password": PASSWORD, "email": address}
    async with restored_options(web_url, accounts_addr):
        await _must_set(root, "EmailVerificationEnabled", "true")
        await _refused(
            await _public(web_url, "POST", "/api/user/register", json=form), "code is required"
        )
        no_email = {"username": username, "password": PASSWORD, "verification_code": "123456"}
        await _refused(await _public(web_url, "POST", "/api/user/register", json=no_email), "email")
        assert (await _send_code(web_url, address))["success"]
        code = _code(inbox.to(address)[0])
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        bad = await _public(
            web_url, "POST", "/api/user/register", json={**form, "verification_code": wrong}
        )
        await _refused(bad, "wrong or has expired")
        assert not await _login_ok(web_url, username, PASSWORD)

        good = await _public(
            web_url, "POST", "/api/user/register", json={**form, "verification_code": code}
        )
        assert good["success"], good["message"]
        session = await login(web_url, username, PASSWORD)
        try:
            assert (await session.call("GET", "/api/user/self"))["email"] == address
        finally:
            await session.aclose()


async def test_verification_cannot_be_enabled_without_smtp(
    web_url: str, root: Console, accounts_addr: str
) -> None:
    async with restored_options(web_url, accounts_addr):
        await _must_set(root, "SMTPServer", "")
        await _refused(await _set(root, "EmailVerificationEnabled", "true"))
        options = {o["key"]: o["value"] for o in await root.call("GET", "/api/option/")}
        assert options["EmailVerificationEnabled"] == "false"
