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
