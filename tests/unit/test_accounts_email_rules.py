"""Email address rules: syntax, the domain whitelist, the alias restriction, reset links."""

from __future__ import annotations

import pytest

from services.accounts import email_rules
from services.shared.errors import FailedPrecondition, InvalidArgument, PermissionDenied

RESTRICTED = {
    "EmailDomainRestrictionEnabled": "true",
    "EmailDomainWhitelist": "example.com, Gmail.com\nqq.com",
    "EmailAliasRestrictionEnabled": "true",
}


@pytest.mark.parametrize("address", ["", "   ", "no-at-sign", "a@b", "a b@c.com", "a@b@c.com"])
def test_malformed_addresses_are_invalid(address: str) -> None:
    with pytest.raises(InvalidArgument):
        email_rules.normalise(address)


def test_addresses_are_trimmed_and_lowercased() -> None:
    assert email_rules.normalise("  Alice@Example.COM ") == "alice@example.com"


def test_the_whitelist_accepts_listed_domains_only() -> None:
    assert email_rules.check_allowed("bob@GMAIL.com", RESTRICTED) == "bob@gmail.com"
    with pytest.raises(PermissionDenied, match="not allowed"):
        email_rules.check_allowed("bob@sub.example.com", RESTRICTED)


@pytest.mark.parametrize("address", ["bob+x@example.com", "b.o.b@gmail.com", "bo.b@googlemail.com"])
def test_aliases_are_refused(address: str) -> None:
    options = {**RESTRICTED, "EmailDomainWhitelist": "example.com,gmail.com,googlemail.com"}
    with pytest.raises(PermissionDenied, match="not allowed"):
        email_rules.check_allowed(address, options)


def test_dots_outside_gmail_and_disabled_rules_are_fine() -> None:
    assert email_rules.check_allowed("b.o.b@example.com", RESTRICTED) == "b.o.b@example.com"
    assert email_rules.check_allowed("bob+x@other.org", {}) == "bob+x@other.org"


@pytest.mark.parametrize("code", ["", "12345", "1234567", "12a456"])
def test_codes_are_six_digits(code: str) -> None:
    with pytest.raises(InvalidArgument):
        email_rules.check_code(code)


def test_reset_link_needs_a_server_address() -> None:
    link = email_rules.reset_link("https://gw.example/", email="a+b@x.com", token="T0k")
    assert link == "https://gw.example/user/reset?email=a%2Bb%40x.com&token=T0k"
    with pytest.raises(FailedPrecondition):
        email_rules.reset_link("  ", email="a@x.com", token="t")
