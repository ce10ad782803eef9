"""Typed rows the accounts repositories return, so every column a use case reads is checked by
mypy (no `row["column"]` that fails only at run time). Each is built from an asyncpg record by
`of`; the field names are the columns of the repository's SELECT."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class UserRecord:
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

    @classmethod
    def of(cls, row: asyncpg.Record) -> UserRecord:
        return cls(**row)

    @classmethod
    def maybe(cls, row: asyncpg.Record | None) -> UserRecord | None:
        return None if row is None else cls(**row)


@dataclass(frozen=True, slots=True)
class TokenRecord:
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

    @classmethod
    def of(cls, row: asyncpg.Record) -> TokenRecord:
        return cls(**row)

    @classmethod
    def maybe(cls, row: asyncpg.Record | None) -> TokenRecord | None:
        return None if row is None else cls(**row)


@dataclass(frozen=True, slots=True)
class ChannelRecord:
    """A `channels` row (`channels_repo.CHANNEL_COLUMNS`)."""

    id: int
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
    created_time: int
    test_time: int
    response_time: int
    balance: float
    balance_updated_time: int
    used_quota: int
    status_reason: str
    status_time: int

    @classmethod
    def of(cls, row: asyncpg.Record) -> ChannelRecord:
        return cls(**row)

    @classmethod
    def maybe(cls, row: asyncpg.Record | None) -> ChannelRecord | None:
        return None if row is None else cls(**row)


@dataclass(frozen=True, slots=True)
class ChannelKeyRecord:
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

    @classmethod
    def of(cls, row: asyncpg.Record) -> ChannelKeyRecord:
        return cls(**row)

    @classmethod
    def maybe(cls, row: asyncpg.Record | None) -> ChannelKeyRecord | None:
        return None if row is None else cls(**row)


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
