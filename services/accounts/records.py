"""Typed rows the accounts repositories return, so every column a use case reads is checked by
mypy (no `row["column"]` that fails only at run time). Each is built from an asyncpg record by
`of`; the field names are the columns of the repository's SELECT."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.shared.db import Row


@dataclass(frozen=True, slots=True)
class UserRecord(Row):
    """A `users` row (`users_repo.USER_COLUMNS`)."""

    id: int
    username: str
    password_hash: str
    display_name: str
    email: str
    role: int
    status: int
    group: str
    aff_code: str
    aff_count: int
    inviter_id: int
    setting: str
    github_id: str
    oidc_id: str
    wechat_id: str
    telegram_id: str
    linux_do_id: str
    idc_flare_id: str
    created_at: int
    deleted_at: int | None


@dataclass(frozen=True, slots=True)
class TokenRecord(Row):
    """A `tokens` row (`tokens_repo.TOKEN_COLUMNS`); the key itself stays encrypted."""

    id: int
    user_id: int
    key_enc: str
    name: str
    status: int
    created_time: int
    accessed_time: int
    expired_time: int
    unlimited_quota: bool
    model_limits_enabled: bool
    model_limits: list[str]
    allow_ips: list[str]
    group: str
    rate_limit_enabled: bool
    rate_limit_period: int
    rate_limit_count: int
    rate_limit_success: int


@dataclass(frozen=True, slots=True)
class ChannelFields:
    """The editable fields of a channel (what a save sets), validated by the caller."""

    type: int
    name: str
    base_url: str
    models: list[str]
    groups: list[str]
    priority: int
    weight: int
    status: int
    model_mapping: str
    status_code_mapping: str
    model_prefix: str
    system_prompt: str
    tag: str
    test_model: str
    openai_organization: str
    other: str
    setting: str
    param_override: str
    auto_ban: bool


@dataclass(frozen=True, slots=True)
class StoredChannel(ChannelFields):
    """A channel's editable fields and what accounts keeps about it: when it was created,
    its last test, balance and automatic status change (the importer carries these over)."""

    created_time: int
    test_time: int
    response_time: int  # ms
    balance: float
    balance_updated_time: int
    status_reason: str
    status_time: int


@dataclass(frozen=True, slots=True)
class ChannelRecord(StoredChannel, Row):
    """A `channels` row (`channels_repo.CHANNEL_COLUMNS`)."""

    id: int
    used_quota: int


@dataclass(frozen=True, slots=True)
class ChannelKeyRecord(Row):
    """A `channel_keys` row (`channels_repo.KEY_COLUMNS`); the key itself stays encrypted."""

    id: int
    channel_id: int
    idx: int
    key_enc: str
    key_hash: str
    status: int
    last_error: str
    used_quota: int
    request_count: int
    failure_count: int


@dataclass(frozen=True, slots=True)
class AbilityRecord:
    """An `abilities` row: a channel serving a model for a group. Built positionally (the
    routing snapshot reads every one)."""

    group: str
    model: str
    channel_id: int
    priority: int
    weight: int
    enabled: bool
    tag: str

    @classmethod
    def of(cls, row: asyncpg.Record) -> AbilityRecord:
        return cls(*row)


@dataclass(frozen=True, slots=True)
class SetupRecord(Row):
    """The `setups` row written when the root user is created."""

    root_user_id: int
    initialized_at: int


@dataclass(frozen=True, slots=True)
class SessionRecord(Row):
    """A live console session (`users_repo.LIVE_SESSIONS`); the session id itself is kept
    only as its hash."""

    id: int
    id_hash: str
    created_at: int
    expires_at: int
    client_ip: str
    user_agent: str


@dataclass(frozen=True, slots=True)
class MessageRecord(Row):
    """An inbox message (`inbox_repo.MESSAGE_COLUMNS`); `read_at` is the reader's mark in a
    user's own listing (0: unread) and 0 in the admins' listings."""

    id: int
    title: str
    content: str
    format: str
    to_all: bool
    created_by: int
    created_at: int
    updated_at: int
    read_at: int = 0


@dataclass(frozen=True, slots=True)
class TwoFactorRecord(Row):
    """A `user_two_factor` row: the TOTP secret (encrypted) and the last accepted step."""

    user_id: int
    secret_enc: str
    enabled: bool
    last_step: int
    created_at: int
    enabled_at: int


@dataclass(frozen=True, slots=True)
class PasskeyRecord(Row):
    """A `user_passkeys` row: one WebAuthn credential."""

    id: int
    user_id: int
    credential_id: str
    public_key: bytes
    sign_count: int
    name: str
    transports: str
    created_at: int
    last_used_at: int


@dataclass(frozen=True, slots=True)
class EmailCodeRecord(Row):
    """A live e-mailed code or reset token (`email_repo.LIVE_CODE`), kept as its HMAC."""

    id: int
    code_hash: str
    user_id: int
    attempts: int


@dataclass(frozen=True, slots=True)
class OptionAuditRecord(Row):
    """An `option_audit` row: who changed which option from what to what (values masked)."""

    id: int
    actor_id: int
    key: str
    old_value: str
    new_value: str
    created_at: int
