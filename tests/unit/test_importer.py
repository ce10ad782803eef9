"""Pure parts of `veloera import`: detection, row conversion, dialects, bcrypt passwords."""

from __future__ import annotations

import bcrypt
import pytest

from services.accounts.passwords import hash_password_sync, needs_rehash, verify_password_sync
from services.cli.infra import free_port
from services.importer import convert
from services.importer.announce import announce
from services.importer.detect import NotUpstreamDatabase, detect
from services.importer.report import Report
from services.importer.sources import MYSQL, POSTGRES, SQLITE

BASE = {"users": {"id", "username"}, "tokens": {"id", "key"}, "channels": {"id", "key"}}


def test_detects_each_product_from_its_columns() -> None:
    assert detect(BASE).name == "one-api"
    assert (
        detect({**BASE, "setups": {"id", "version"}}, version="v0.6.1")
        .describe()
        .startswith("new-api v0.6.1")
    )
    veloera = {**BASE, "users": {"id", "username", "idc_flare_id"}, "setups": {"id"}}
    assert detect(veloera).name == "veloera"
    with pytest.raises(NotUpstreamDatabase, match="no table channels"):
        detect({"users": set(), "tokens": set()})


def test_go_bcrypt_hashes_verify_and_ask_for_argon2() -> None:
    go_hash = bcrypt.hashpw(b"oldpassword1", bcrypt.gensalt(10, prefix=b"2a")).decode()
    assert verify_password_sync(go_hash, "oldpassword1")
    assert not verify_password_sync(go_hash, "wrong-password")
    assert not verify_password_sync(go_hash, "x" * 100)  # over bcrypt's 72 bytes: refused
    assert not verify_password_sync("$2a$10$broken", "oldpassword1")
    assert needs_rehash(go_hash)
    assert not needs_rehash(hash_password_sync("oldpassword1"))
    assert not needs_rehash("")


def test_one_api_token_columns_become_limits_and_allow_list() -> None:
    token, notes = convert.token(
        {"key": "sk-abc", "user_id": 3, "name": "n" * 40, "status": 1, "models": "a,b,a",
         "subnet": "10.0.0.0/8", "unlimited_quota": 0, "remain_quota": -5}
    )  # fmt: skip
    assert token.key == "abc" and token.model_limits_enabled and token.model_limits == ["a", "b"]
    assert token.allow_ips == ["10.0.0.0/8"] and token.remain_quota == 0
    assert "name cut to 30 characters" in notes


def test_an_invalid_allow_list_entry_disables_the_key_rather_than_widening_it() -> None:
    token, notes = convert.token({"key": "k", "status": 1, "allow_ips": "10.0.0.1\nnot-an-ip"})
    assert token.status == 2 and token.allow_ips == []
    assert notes == ["IP allow-list has an invalid entry: key imported disabled"]


def test_deleted_rows_and_soft_delete_times() -> None:
    with pytest.raises(convert.Unmappable, match="deleted key"):
        convert.token({"key": "k", "deleted_at": "2024-01-01 00:00:00+00:00"})
    assert convert.epoch("2025-03-01 10:00:00.123456789+08:00") == 1740794400
    assert convert.epoch(None) is None


def test_options_go_to_their_service_or_are_reported() -> None:
    ratio = convert.option("ModelRatio", '{"gpt-4o": 1.25}')
    assert (ratio.to_accounts, ratio.to_billing) == (False, True)
    groups = convert.option("UserUsableGroups", '{"default": "Default"}')
    assert (groups.to_accounts, groups.to_billing) == (True, True)
    assert convert.option("SystemName", "Mine").to_accounts
    with pytest.raises(convert.Unmappable, match="unknown option ChatLink"):
        convert.option("ChatLink", "x")
    with pytest.raises(convert.Unmappable, match="GroupRatio is not a JSON object"):
        convert.option("GroupRatio", "[1]")


def test_log_other_keeps_objects_only() -> None:
    assert convert.log_other('{"a": 1}') == '{"a": 1}'
    assert convert.log_other("oops") == "{}"
    assert convert.log_other("[1]") == "{}"
    assert convert.log_other('{"a": "\\u0000"}') == "{}"  # PostgreSQL jsonb refuses NUL


def test_dialects_quote_reserved_names_and_inline_page_bounds() -> None:
    cols = ["id", "key", "group"]
    assert MYSQL.select_page("tokens", cols, key="id", after=5, limit=10) == (
        "SELECT `id`, `key`, `group` FROM `tokens` WHERE `id` > 5 ORDER BY `id` LIMIT 10"
    )
    assert SQLITE.quote("group") == POSTGRES.quote("group") == '"group"'
    assert MYSQL.quote("a`b") == "`a``b`"


async def test_announcing_gives_up_when_nats_is_unreachable() -> None:
    """The import is committed either way; an unreachable NATS is reported, not retried."""
    report = Report(product="new-api", dry_run=False)
    assert not await announce(f"nats://127.0.0.1:{free_port()}", report, routing_version=1)


def test_missing_columns_read_as_null_so_pages_keep_their_shape() -> None:
    sql = SQLITE.select_page("logs", ["id", "ip"], key="id", after=0, limit=5, present={"id"})
    assert sql == 'SELECT "id", NULL AS "ip" FROM "logs" WHERE "id" > 0 ORDER BY "id" LIMIT 5'


def test_an_identity_already_bound_here_or_earlier_in_the_import_is_dropped() -> None:
    from services.importer.report import TableReport
    from services.importer.run import _unique_identities

    def user(name: str, github_id: str, oidc_id: str) -> convert.User:
        row = {"id": 1, "username": name, "github_id": github_id, "oidc_id": oidc_id}
        return convert.user(row, now=0)[0]

    from services.importer.target import IDENTITY_COLUMNS

    taken: dict[str, set[str]] = {column: set() for column in IDENTITY_COLUMNS}
    taken["oidc_id"].add("sub-held-here")
    item = TableReport("users")
    first = _unique_identities(user("a", "octo", "sub-held-here"), taken, item)
    second = _unique_identities(user("b", "octo", "sub-b"), taken, item)
    assert (first.github_id, first.oidc_id) == ("octo", "")
    assert (second.github_id, second.oidc_id) == ("", "sub-b")
    assert item.notes == {
        "oidc_id already bound to another user here: dropped": 1,
        "github_id already bound to another user here: dropped": 1,
    }
