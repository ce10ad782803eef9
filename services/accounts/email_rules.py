"""Pure email rules: address syntax, the domain whitelist and the alias restriction."""

from __future__ import annotations

import re

from services.shared.errors import FailedPrecondition, InvalidArgument, PermissionDenied

MAX_EMAIL = 50
CODE_LENGTH = 6
GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise(email: str) -> str:
    """The address trimmed and lower-cased; InvalidArgument when it is not an address."""
    email = email.strip().lower()
    if not email:
        raise InvalidArgument("email is required", code="email_required")
    if len(email) > MAX_EMAIL or not _ADDRESS.match(email):
        raise InvalidArgument("invalid email address", code="invalid_email")
    return email


def whitelist(raw: str) -> frozenset[str]:
    """Domains of the EmailDomainWhitelist option (comma or newline separated)."""
    parts = re.split(r"[\s,]+", raw.lower())
    return frozenset(part.strip().lstrip("@") for part in parts if part.strip())


def check_allowed(email: str, options: dict[str, str]) -> str:
    """The normalised address, after the domain whitelist and the alias restriction."""
    email = normalise(email)
    local, _, domain = email.rpartition("@")
    if options.get("EmailDomainRestrictionEnabled") == "true":
        allowed = whitelist(options.get("EmailDomainWhitelist", ""))
        if domain not in allowed:
            raise PermissionDenied(
                f"email domain {domain} is not allowed; allowed: {', '.join(sorted(allowed))}",
                code="email_domain_not_allowed",
            )
    if options.get("EmailAliasRestrictionEnabled") == "true":
        if "+" in local:
            raise PermissionDenied(
                "email aliases with '+' are not allowed", code="email_alias_not_allowed"
            )
        if domain in GMAIL_DOMAINS and "." in local:
            raise PermissionDenied(
                "dots in a Gmail address are not allowed (they make aliases)",
                code="email_alias_not_allowed",
            )
    return email


def check_code(code: str) -> str:
    code = code.strip()
    if len(code) != CODE_LENGTH or not code.isdigit():
        raise InvalidArgument(f"the verification code must be {CODE_LENGTH} digits")
    return code


def reset_link(server_address: str, *, email: str, token: str) -> str:
    """The link mailed for a password reset (the SPA's /user/reset page)."""
    from urllib.parse import urlencode

    base = server_address.strip().rstrip("/")
    if not base:
        raise FailedPrecondition(
            "ServerAddress is not configured; cannot build the reset link",
            code="server_address_missing",
        )
    return f"{base}/user/reset?{urlencode({'email': email, 'token': token})}"
