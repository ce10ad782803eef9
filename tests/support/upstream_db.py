"""Small new-api and one-api databases for the import tests, in SQLite or on PostgreSQL.

The tables follow the upstream GORM models (`model/*.go`): only the columns the import reads,
with the types GORM gives them, and rows a real installation would hold.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import bcrypt

from tests.support.helpers import unique_name

SQL_TYPES = {
    "sqlite": {"int": "integer", "text": "text", "bool": "numeric", "float": "real",
               "time": "datetime"},
    "postgres": {"int": "bigint", "text": "text", "bool": "boolean", "float": "double precision",
                 "time": "timestamptz"},
}  # fmt: skip
OLD_PASSWORD = "oldpassword1"
NOW = int(time.time())
DAY = 86_400


@dataclass
class Table:
    columns: dict[str, str]  # name -> int | text | bool | float | time
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Upstream:
    """A source database: its tables and the facts tests check after the import."""

    product: str
    tables: dict[str, Table]
    usernames: dict[str, str]  # role in the fixture -> username
    keys: dict[str, str]  # role -> API key (without sk-)
    model: str
    channel_key: str
    access_token: str

    def rows(self, table: str) -> list[dict[str, Any]]:
        return self.tables[table].rows


def _bcrypt(password: str) -> str:
    # Go's bcrypt writes $2a$ hashes with cost 10.
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(10, prefix=b"2a")).decode()


def new_api(*, upstream_url: str, model_ratio: dict[str, float]) -> Upstream:
    """A new-api database: root, two customers (one invited), keys, a tagged channel, codes."""
    names = {"root": unique_name("r"), "alice": unique_name("a"), "bob": unique_name("b"),
             "gone": unique_name("g")}  # fmt: skip
    keys = {"alice": secrets.token_hex(24), "limited": secrets.token_hex(24)}
    model, channel_key = unique_name("imp-"), "sk-upstream-" + secrets.token_hex(8)
    access_token = secrets.token_hex(16)
    password = _bcrypt(OLD_PASSWORD)
    user = {"display_name": "", "email": "", "github_id": "", "oidc_id": "", "wechat_id": "",
            "telegram_id": "", "access_token": None, "request_count": 0, "group": "default",
            "aff_count": 0, "aff_quota": 0, "aff_history": 0, "inviter_id": 0,
            "deleted_at": None, "setting": ""}  # fmt: skip
    users = Table(
        {"id": "int", "username": "text", "password": "text", "display_name": "text",
         "role": "int", "status": "int", "email": "text", "github_id": "text", "oidc_id": "text",
         "wechat_id": "text", "telegram_id": "text", "access_token": "text", "quota": "int",
         "used_quota": "int", "request_count": "int", "group": "text", "aff_code": "text",
         "aff_count": "int", "aff_quota": "int", "aff_history": "int", "inviter_id": "int",
         "deleted_at": "time", "setting": "text"},
        [
            {**user, "id": 1, "username": names["root"], "password": password, "role": 100,
             "status": 1, "quota": 0, "used_quota": 0, "aff_code": secrets.token_hex(2),
             "aff_count": 1},
            {**user, "id": 2, "username": names["alice"], "password": password, "role": 1,
             "status": 1, "quota": 5_000_000, "used_quota": 1_234, "request_count": 7,
             "aff_code": secrets.token_hex(2), "inviter_id": 1, "access_token": access_token,
             "email": f"{names['alice']}@example.com", "aff_quota": 500, "aff_history": 500,
             "setting": '{"notify_type":"email"}'},
            {**user, "id": 3, "username": names["bob"], "password": password, "role": 1,
             "status": 2, "quota": -50, "used_quota": 99, "aff_code": secrets.token_hex(2)},
            {**user, "id": 4, "username": names["gone"], "password": password, "role": 1,
             "status": 1, "quota": 70, "used_quota": 0, "aff_code": secrets.token_hex(2),
             "deleted_at": "2025-03-01 10:00:00.123456789+08:00"},
        ],
    )  # fmt: skip
    token = {"status": 1, "created_time": NOW - DAY, "accessed_time": 0, "expired_time": -1,
             "remain_quota": 0, "unlimited_quota": True, "used_quota": 0,
             "model_limits_enabled": False, "model_limits": "", "allow_ips": "", "group": "",
             "deleted_at": None}  # fmt: skip
    tokens = Table(
        {"id": "int", "user_id": "int", "key": "text", "status": "int", "name": "text",
         "created_time": "int", "accessed_time": "int", "expired_time": "int",
         "remain_quota": "int", "unlimited_quota": "bool", "used_quota": "int",
         "model_limits_enabled": "bool", "model_limits": "text", "allow_ips": "text",
         "group": "text", "deleted_at": "time"},
        [
            {**token, "id": 10, "user_id": 2, "key": keys["alice"], "name": "main key"},
            {**token, "id": 11, "user_id": 2, "key": keys["limited"], "name": "limited",
             "unlimited_quota": False, "remain_quota": 1_000, "used_quota": 20,
             "model_limits_enabled": True, "model_limits": f"{model},gpt-4o",
             "allow_ips": "10.0.0.1\n192.168.0.0/24"},
            {**token, "id": 12, "user_id": 2, "key": secrets.token_hex(24), "name": "old",
             "deleted_at": "2025-01-01 00:00:00+00:00"},
            {**token, "id": 13, "user_id": 99, "key": secrets.token_hex(24), "name": "orphan"},
        ],
    )  # fmt: skip
    channels = Table(
        {"id": "int", "type": "int", "key": "text", "openai_organization": "text",
         "test_model": "text", "status": "int", "name": "text", "weight": "int",
         "created_time": "int", "test_time": "int", "response_time": "int", "base_url": "text",
         "other": "text", "balance": "float", "balance_updated_time": "int", "models": "text",
         "group": "text", "used_quota": "int", "model_mapping": "text",
         "status_code_mapping": "text", "priority": "int", "auto_ban": "int",
         "other_info": "text", "tag": "text", "setting": "text", "param_override": "text"},
        [
            {"id": 5, "type": 1, "key": channel_key, "openai_organization": "",
             "test_model": model, "status": 1, "name": unique_name("ch"), "weight": 1,
             "created_time": NOW - 9 * DAY, "test_time": 0, "response_time": 120,
             "base_url": upstream_url, "other": "", "balance": 12.5,
             "balance_updated_time": 0, "models": model, "group": "default",
             "used_quota": 300, "model_mapping": "{}", "status_code_mapping": "",
             "priority": 0, "auto_ban": 1, "other_info": "", "tag": "imported-tag",
             "setting": '{"force_format":false}', "param_override": ""},
            {"id": 6, "type": 1, "key": "k1\nk2", "openai_organization": "",
             "test_model": "", "status": 2, "name": unique_name("ch"), "weight": 0,
             "created_time": NOW - 9 * DAY, "test_time": 0, "response_time": 0,
             "base_url": upstream_url, "other": "", "balance": 0.0,
             "balance_updated_time": 0, "models": f"{model}-off", "group": "default,vip",
             "used_quota": 0, "model_mapping": "not json", "status_code_mapping": "",
             "priority": 3, "auto_ban": 0,
             "other_info": '{"status_reason":"manual","status_time":5}', "tag": "",
             "setting": "", "param_override": ""},
        ],
    )  # fmt: skip
    abilities = Table(
        {"group": "text", "model": "text", "channel_id": "int", "enabled": "bool",
         "priority": "int", "weight": "int", "tag": "text"},
        [
            {"group": "default", "model": model, "channel_id": 5, "enabled": True,
             "priority": 0, "weight": 1, "tag": "imported-tag"},
            {"group": "default", "model": f"{model}-off", "channel_id": 6, "enabled": False,
             "priority": 3, "weight": 0, "tag": ""},
            {"group": "vip", "model": f"{model}-off", "channel_id": 6, "enabled": False,
             "priority": 3, "weight": 0, "tag": ""},
        ],
    )  # fmt: skip
    options = Table(
        {"key": "text", "value": "text"},
        [
            {"key": "ModelRatio", "value": json.dumps({**model_ratio, model: 2.0})},
            {"key": "About", "value": f"moved from new-api {model}"},
            {"key": "RetryTimes", "value": "many"},
            {"key": "ChatLink", "value": "https://chat.example.com"},
        ],
    )
    redemptions = Table(
        {"id": "int", "user_id": "int", "key": "text", "status": "int", "name": "text",
         "quota": "int", "created_time": "int", "redeemed_time": "int", "used_user_id": "int",
         "expired_time": "int", "deleted_at": "time"},
        [
            {"id": 1, "user_id": 1, "key": secrets.token_hex(16), "status": 1, "name": "promo",
             "quota": 1_000, "created_time": NOW - DAY, "redeemed_time": 0, "used_user_id": 0,
             "expired_time": NOW + 30 * DAY, "deleted_at": None},
            {"id": 2, "user_id": 1, "key": secrets.token_hex(16), "status": 3, "name": "promo",
             "quota": 2_000, "created_time": NOW - DAY, "redeemed_time": NOW - 3600,
             "used_user_id": 2, "expired_time": 0, "deleted_at": None},
        ],
    )  # fmt: skip
    return Upstream(
        product="new-api",
        tables={
            "users": users, "tokens": tokens, "channels": channels, "abilities": abilities,
            "options": options, "redemptions": redemptions, "logs": _logs(names, model),
            "setups": Table({"id": "int", "version": "text", "initialized_at": "int"},
                            [{"id": 1, "version": "v0.6.10", "initialized_at": NOW - 99 * DAY}]),
            "midjourneys": Table({"id": "int", "user_id": "int", "mj_id": "text"},
                                 [{"id": 1, "user_id": 2, "mj_id": "x"}]),
            "tasks": Table({"id": "int", "user_id": "int", "task_id": "text"}, []),
            "quota_data": Table(
                {"id": "int", "user_id": "int", "username": "text", "model_name": "text",
                 "created_at": "int", "token_used": "int", "count": "int", "quota": "int"},
                [{"id": i, "user_id": 2, "username": names["alice"], "model_name": model,
                  "created_at": NOW // 3600 * 3600 - 7200, "token_used": 15, "count": 1,
                  "quota": 100} for i in (1, 2)]
                + [{"id": 3, "user_id": 99, "username": "nobody", "model_name": model,
                    "created_at": NOW - 7200, "token_used": 1, "count": 1, "quota": 1}],
            ),
        },
        usernames=names, keys=keys, model=model, channel_key=channel_key,
        access_token=access_token,
    )  # fmt: skip


def _logs(names: dict[str, str], model: str, count: int = 12) -> Table:
    columns = {"id": "int", "user_id": "int", "created_at": "int", "type": "int",
               "content": "text", "username": "text", "token_name": "text",
               "model_name": "text", "quota": "int", "prompt_tokens": "int",
               "completion_tokens": "int", "use_time": "int", "is_stream": "bool",
               "channel_id": "int", "token_id": "int", "group": "text", "ip": "text",
               "other": "text"}  # fmt: skip
    rows = []
    for i in range(1, count + 1):
        months_ago = i % 3  # spread over three monthly partitions
        rows.append({
            "id": i, "user_id": 2, "created_at": NOW - months_ago * 31 * DAY - i, "type": 2,
            "content": "model ratio 2", "username": names["alice"], "token_name": "main key",
            "model_name": model, "quota": 100 + i, "prompt_tokens": 10, "completion_tokens": 5,
            "use_time": 2, "is_stream": i % 2 == 0, "channel_id": 5, "token_id": 10,
            "group": "default", "ip": "", "other": '{"model_ratio":2}' if i != 3 else "oops",
        })  # fmt: skip
    rows.append({**rows[0], "id": count + 1, "user_id": 77, "username": "nobody",
                 "type": 1, "content": "top-up", "model_name": ""})  # fmt: skip
    return Table(columns, rows)


def one_api(*, upstream_url: str) -> Upstream:
    """A one-api database: its older token (models, subnet) and channel (config) columns."""
    names = {"alice": unique_name("o")}
    keys = {"alice": secrets.token_hex(24)}
    model = unique_name("one-")
    users = Table(
        {"id": "int", "username": "text", "password": "text", "display_name": "text",
         "role": "int", "status": "int", "email": "text", "github_id": "text",
         "wechat_id": "text", "lark_id": "text", "oidc_id": "text", "access_token": "text",
         "quota": "int", "used_quota": "int", "request_count": "int", "group": "text",
         "aff_code": "text", "inviter_id": "int"},
        [{"id": 7, "username": names["alice"], "password": _bcrypt(OLD_PASSWORD),
          "display_name": "Alice", "role": 1, "status": 1, "email": "", "github_id": "",
          "wechat_id": "", "lark_id": "ou_123", "oidc_id": "", "access_token": None,
          "quota": 800_000, "used_quota": 50, "request_count": 2, "group": "default",
          "aff_code": secrets.token_hex(2), "inviter_id": 0}],
    )  # fmt: skip
    tokens = Table(
        {"id": "int", "user_id": "int", "key": "text", "status": "int", "name": "text",
         "created_time": "int", "accessed_time": "int", "expired_time": "int",
         "remain_quota": "int", "unlimited_quota": "bool", "used_quota": "int",
         "models": "text", "subnet": "text"},
        [{"id": 3, "user_id": 7, "key": keys["alice"], "status": 1, "name": "one key",
          "created_time": NOW, "accessed_time": 0, "expired_time": -1, "remain_quota": 500,
          "unlimited_quota": True, "used_quota": 0, "models": model, "subnet": "127.0.0.0/8"}],
    )  # fmt: skip
    channels = Table(
        {"id": "int", "type": "int", "key": "text", "status": "int", "name": "text",
         "weight": "int", "created_time": "int", "base_url": "text", "other": "text",
         "models": "text", "group": "text", "model_mapping": "text", "priority": "int",
         "config": "text", "system_prompt": "text"},
        [{"id": 1, "type": 1, "key": "sk-one-" + secrets.token_hex(8), "status": 1,
          "name": unique_name("oc"), "weight": 0, "created_time": NOW, "base_url": upstream_url,
          "other": "", "models": model, "group": "default", "model_mapping": "",
          "priority": 0, "config": '{"region":"us-east-1"}', "system_prompt": ""}],
    )  # fmt: skip
    logs = Table(
        {"id": "int", "user_id": "int", "created_at": "int", "type": "int", "content": "text",
         "username": "text", "token_name": "text", "model_name": "text", "quota": "int",
         "prompt_tokens": "int", "completion_tokens": "int", "channel_id": "int",
         "is_stream": "bool"},
        [{"id": i, "user_id": 7, "created_at": NOW - i * 60, "type": 2, "content": "",
          "username": names["alice"], "token_name": "one key", "model_name": model,
          "quota": 10, "prompt_tokens": 1, "completion_tokens": 1, "channel_id": 1,
          "is_stream": False} for i in range(1, 6)],
    )  # fmt: skip
    return Upstream(
        product="one-api",
        tables={"users": users, "tokens": tokens, "channels": channels, "logs": logs,
                "abilities": Table({"group": "text", "model": "text", "channel_id": "int",
                                    "enabled": "bool", "priority": "int"},
                                   [{"group": "default", "model": model, "channel_id": 1,
                                     "enabled": True, "priority": 0}]),
                "options": Table({"key": "text", "value": "text"}, []),
                "redemptions": Table({"id": "int", "key": "text", "quota": "int",
                                      "status": "int"}, [])},
        usernames=names, keys=keys, model=model, channel_key="", access_token="",
    )  # fmt: skip


def _create(table: str, spec: Table, dialect: str) -> str:
    types = SQL_TYPES[dialect]
    cols = ", ".join(f'"{name}" {types[kind]}' for name, kind in spec.columns.items())
    return f'CREATE TABLE "{table}" ({cols})'


def write_sqlite(upstream: Upstream, path: Path) -> Path:
    conn = sqlite3.connect(path)
    try:
        for name, spec in upstream.tables.items():
            conn.execute(_create(name, spec, "sqlite"))
            columns = list(spec.columns)
            marks = ", ".join("?" for _ in columns)
            quoted = ", ".join(f'"{c}"' for c in columns)
            conn.executemany(
                f'INSERT INTO "{name}" ({quoted}) VALUES ({marks})',
                [[row.get(c) for c in columns] for row in spec.rows],
            )
        conn.commit()
    finally:
        conn.close()
    return path


async def write_postgres(upstream: Upstream, dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for name, spec in upstream.tables.items():
            await conn.execute(_create(name, spec, "postgres"))
            columns = list(spec.columns)
            records = [
                [_pg_value(row.get(c), spec.columns[c]) for c in columns] for row in spec.rows
            ]
            if records:
                await conn.copy_records_to_table(name, records=records, columns=columns)
    finally:
        await conn.close()


def _pg_value(value: Any, kind: str) -> Any:
    if value is None or kind != "time":
        return bool(value) if kind == "bool" and value is not None else value
    from datetime import datetime

    return datetime.fromisoformat(str(value)[:19] + "+00:00")


def veloera(*, upstream_url: str, model_ratio: dict[str, float]) -> Upstream:
    """A Veloera (Go) database: new-api's tables plus subscription balances, model prefixes,
    gift codes with their per-user uses (`redemption_logs`)."""
    upstream = new_api(upstream_url=upstream_url, model_ratio=model_ratio)
    upstream.product = "veloera"
    users = upstream.tables["users"]
    users.columns["subscription_quota"] = "int"
    for row in users.rows:
        row["subscription_quota"] = 3_000 if row["id"] == 2 else 0
    channels = upstream.tables["channels"]
    channels.columns["model_prefix"] = "text"
    channels.columns["system_prompt"] = "text"
    for row in channels.rows:
        row["model_prefix"], row["system_prompt"] = "", "Be brief."
    codes = upstream.tables["redemptions"]
    codes.columns.update(
        {"is_gift": "bool", "max_uses": "int", "used_count": "int", "valid_from": "int",
         "valid_until": "int"}
    )  # fmt: skip
    for row in codes.rows:
        row.update(is_gift=False, max_uses=1, used_count=int(row["status"] == 3), valid_from=0,
                   valid_until=0)  # fmt: skip
    codes.rows.append(
        {"id": 3, "user_id": 1, "key": secrets.token_hex(16), "status": 1, "name": "gift",
         "quota": 500, "created_time": NOW - DAY, "redeemed_time": 0, "used_user_id": 0,
         "expired_time": 0, "deleted_at": None, "is_gift": True, "max_uses": 10,
         "used_count": 2, "valid_from": NOW - DAY, "valid_until": NOW + DAY}
    )  # fmt: skip
    upstream.tables["redemption_logs"] = Table(
        {"id": "int", "redemption_id": "int", "user_id": "int", "used_time": "int"},
        [{"id": 1, "redemption_id": 3, "user_id": 2, "used_time": NOW - 60},
         {"id": 2, "redemption_id": 3, "user_id": 3, "used_time": NOW - 30},
         {"id": 3, "redemption_id": 3, "user_id": 42, "used_time": NOW - 10}],
    )  # fmt: skip
    return upstream
