"""Whether password self-registration is open (RegisterEnabled, PasswordRegisterEnabled)."""

from __future__ import annotations

from services.accounts import channels_repo, option_rules
from services.accounts.types import Conn
from services.shared.errors import PermissionDenied


async def check_registration_open(conn: Conn) -> dict[str, str]:
    """The current options, or PermissionDenied when password registration is switched off."""
    options = option_rules.merged(await channels_repo.all_options(conn))
    if options["RegisterEnabled"] != "true":
        raise PermissionDenied(
            "registration is closed by the administrator", code="register_disabled"
        )
    if options["PasswordRegisterEnabled"] != "true":
        raise PermissionDenied(
            "password registration is closed by the administrator; use another sign-in method",
            code="password_register_disabled",
        )
    return options
