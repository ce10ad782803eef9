"""Validation of user fields (upstream `model/user.go`: username ≤12, password 8..20)."""

from __future__ import annotations

import json

from services.shared.crypto import random_key
from services.shared.errors import InvalidArgument

MAX_USERNAME = 12
MIN_PASSWORD = 8
MAX_PASSWORD = 20
MAX_DISPLAY_NAME = 20
MAX_EMAIL = 50
MAX_GROUP = 64


def check_username(username: str) -> str:
    if not 1 <= len(username) <= MAX_USERNAME or username != username.strip():
        raise InvalidArgument(f"username must be 1..{MAX_USERNAME} characters without spaces")
    return username


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidArgument(f"password must be {MIN_PASSWORD}..{MAX_PASSWORD} characters")
    return password


def check_display_name(display_name: str) -> str:
    if len(display_name) > MAX_DISPLAY_NAME:
        raise InvalidArgument(f"display name must be at most {MAX_DISPLAY_NAME} characters")
    return display_name


def check_email(email: str) -> str:
    email = email.strip()
    if email and (len(email) > MAX_EMAIL or "@" not in email):
        raise InvalidArgument("invalid email address")
    return email


def check_group(group: str) -> str:
    group = group.strip()
    if not group or len(group) > MAX_GROUP:
        raise InvalidArgument(f"group must be 1..{MAX_GROUP} characters")
    return group


def check_setting(setting: str) -> str:
    if not setting.strip():
        return ""
    try:
        parsed = json.loads(setting)
    except ValueError:
        raise InvalidArgument("setting must be a JSON object: invalid JSON") from None
    if not isinstance(parsed, dict):
        raise InvalidArgument("setting must be a JSON object")
    return setting


def new_aff_code() -> str:
    return random_key(4)
