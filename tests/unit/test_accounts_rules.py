"""Unit tests of the accounts domain rules: allow-lists, channels, roles, options, tokens."""

from __future__ import annotations

import json

import pytest
from veloera.accounts.v1 import accounts_pb2 as pb

from services.accounts import channel_rules, ipnets, option_rules, roles, token_rules
from services.relay.adaptors import Adaptors
from services.shared.channel_types import SUPPORTED_TYPES
from services.shared.errors import FailedPrecondition, InvalidArgument, PermissionDenied


def test_allow_list_accepts_ips_and_cidrs_and_normalises_them() -> None:
    entries = [" 10.1.2.3/8 ", "2001:DB8::1", "192.168.0.1", "", "192.168.0.1"]
    assert ipnets.normalize_allow_list(entries) == ["10.0.0.0/8", "2001:db8::1", "192.168.0.1"]


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "300.1.1.1", "abc", "::g", "1.2.3.4/-1"])
def test_allow_list_rejects_malformed_entries(entry: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid IP or CIDR"):
        ipnets.normalize_allow_list([entry])


def test_ip_allowed_matches_exact_addresses_and_ranges() -> None:
    allow = ["10.0.0.0/8", "2001:db8::/32", "192.168.1.7"]
    assert ipnets.ip_allowed("10.20.30.40", allow)
    assert ipnets.ip_allowed("2001:db8::abcd", allow)
    assert ipnets.ip_allowed("192.168.1.7", allow)
    assert not ipnets.ip_allowed("192.168.1.8", allow)
    assert not ipnets.ip_allowed("not-an-ip", allow)
    assert ipnets.ip_allowed("8.8.8.8", [])


def test_keys_split_on_lines_and_commas_except_json_keys() -> None:
    assert channel_rules.split_keys(1, "a, b\nc\r\n\na") == ["a", "b", "c"]
    vertex = '{"type": "service_account", "a": 1}'
    assert channel_rules.split_keys(41, vertex) == [vertex]
    assert channel_rules.split_keys(1, "  ") == []


@pytest.mark.parametrize("text", ["", "  ", "{}", '{"gpt-4": "gpt-4o"}'])
def test_json_object_fields_accept_empty_or_objects(text: str) -> None:
    expected = text if text.strip() else ""
    assert channel_rules.check_json_object("model_mapping", text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("[1]", "got list"), ("nope", "invalid JSON"), ("3", "got int"), ('"s"', "got str")],
)
def test_json_object_fields_reject_everything_else(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        channel_rules.check_json_object("model_mapping", text)


def _failure(**fields: object) -> channel_rules.Failure:
    base: dict[str, object] = {
        "channel_type": 1,
        "status_code": 500,
        "error_type": "",
        "error_code": "",
        "error_message": "",
        "local_error": False,
    }
    return channel_rules.Failure(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "failure",
    [
        _failure(status_code=401),
        _failure(status_code=403, channel_type=24),
        _failure(error_code="account_deactivated"),
        _failure(error_type="insufficient_quota"),
        _failure(error_message="Error: YOU EXCEEDED YOUR CURRENT QUOTA, please check"),
    ],
)
def test_auth_and_quota_failures_disable_a_key(failure: channel_rules.Failure) -> None:
    assert channel_rules.should_disable(failure, list(channel_rules.DEFAULT_DISABLE_KEYWORDS))


@pytest.mark.parametrize(
    "failure",
    [
        _failure(status_code=429, error_message="rate limited"),
        _failure(status_code=403, channel_type=1),
        _failure(status_code=401, local_error=True),
        _failure(status_code=500, error_message="upstream timeout"),
    ],
)
def test_transient_or_local_failures_keep_the_key(failure: channel_rules.Failure) -> None:
    assert not channel_rules.should_disable(failure, list(channel_rules.DEFAULT_DISABLE_KEYWORDS))


def test_custom_keywords_replace_the_defaults() -> None:
    keywords = channel_rules.parse_keywords("banned forever\n\n")
    assert keywords == ["banned forever"]
    assert channel_rules.should_disable(_failure(error_message="You are BANNED forever"), keywords)
    assert not channel_rules.should_disable(_failure(error_message="Permission denied"), keywords)


def test_admin_cannot_promote_or_touch_equal_or_higher_roles() -> None:
    with pytest.raises(PermissionDenied):
        roles.plan_manage("promote", actor_role=roles.ADMIN, target_role=roles.COMMON)
    with pytest.raises(PermissionDenied):
        roles.plan_manage("disable", actor_role=roles.ADMIN, target_role=roles.ADMIN)
    with pytest.raises(PermissionDenied):
        roles.plan_manage("disable", actor_role=roles.ADMIN, target_role=roles.ROOT)
    with pytest.raises(PermissionDenied):
        roles.plan_manage("enable", actor_role=roles.COMMON, target_role=roles.COMMON)
    change = roles.plan_manage("disable", actor_role=roles.ADMIN, target_role=roles.COMMON)
    assert change == roles.Change(status=roles.DISABLED)


def test_root_manages_everyone_but_can_never_be_disabled_or_demoted() -> None:
    assert roles.plan_manage("promote", actor_role=roles.ROOT, target_role=roles.COMMON) == (
        roles.Change(role=roles.ADMIN)
    )
    assert roles.plan_manage("demote", actor_role=roles.ROOT, target_role=roles.ADMIN) == (
        roles.Change(role=roles.COMMON)
    )
    for action in ("disable", "demote", "delete"):
        with pytest.raises(FailedPrecondition):
            roles.plan_manage(action, actor_role=roles.ROOT, target_role=roles.ROOT)
    with pytest.raises(FailedPrecondition):
        roles.plan_manage("demote", actor_role=roles.ROOT, target_role=roles.COMMON)
    with pytest.raises(InvalidArgument):
        roles.plan_manage("explode", actor_role=roles.ROOT, target_role=roles.COMMON)


def test_new_user_roles_must_be_below_the_actor() -> None:
    roles.check_new_role(roles.ADMIN, roles.COMMON)
    roles.check_new_role(roles.ROOT, roles.ADMIN)
    with pytest.raises(PermissionDenied):
        roles.check_new_role(roles.ADMIN, roles.ADMIN)
    with pytest.raises(PermissionDenied):
        roles.check_new_role(roles.ROOT, roles.ROOT)


def test_options_hide_secrets_and_validate_json() -> None:
    options = option_rules.merged({"SMTPToken": "t", "TurnstileSecretKey": "s", "Notice": "n"})
    shown = option_rules.visible(options, include_secrets=False)
    assert "Notice" in shown and "SMTPToken" not in shown and "TurnstileSecretKey" not in shown
    assert shown["UserUsableGroups"] == option_rules.DEFAULT_USABLE_GROUPS
    option_rules.validate("UserUsableGroups", '{"default": "x"}')
    with pytest.raises(InvalidArgument):
        option_rules.validate("UserUsableGroups", "[]")
    with pytest.raises(InvalidArgument, match="billing"):
        option_rules.validate("ModelRatio", "{}")
    with pytest.raises(InvalidArgument):
        option_rules.validate("ReverseProxyProvider", "apache")


def test_usable_groups_add_the_users_own_group() -> None:
    value = option_rules.DEFAULT_USABLE_GROUPS
    assert option_rules.usable_groups(value, "team") == ["default", "vip", "team"]
    assert option_rules.usable_groups(value, "vip") == ["default", "vip"]
    assert option_rules.usable_groups("garbage", "x") == ["default", "vip", "x"]


def test_token_fields_defaults_and_expiry() -> None:
    token = pb.Token(name=" key ", expired_time=0, allow_ips=["10.0.0.1"])
    fields = token_rules.fields_from_proto(token, status=1, now=1000, creating=True)
    assert (fields.name, fields.expired_time, fields.rate_limit_period) == ("key", -1, 60)
    future = pb.Token(name="k", expired_time=2000)
    assert token_rules.fields_from_proto(future, status=1, now=1000, creating=True).expired_time
    with pytest.raises(InvalidArgument):
        token_rules.fields_from_proto(pb.Token(name="k", expired_time=999), status=1, now=1000,
                                      creating=True)  # fmt: skip
    past_disabled = pb.Token(name="k", expired_time=999)
    fields = token_rules.fields_from_proto(past_disabled, status=2, now=1000, creating=False)
    assert fields.expired_time == 999
    with pytest.raises(FailedPrecondition, match="token has expired"):
        token_rules.fields_from_proto(past_disabled, status=1, now=1000, creating=False)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com",
        "example.com",
        "http://",
        "https://:443/x",
        "http://[::1",
        "http://h:99999",
    ],
)
def test_base_urls_must_be_http_urls_with_a_host(url: str) -> None:
    with pytest.raises(InvalidArgument, match="base_url must be an http or https URL"):
        channel_rules.check_url("base_url", url, channel_rules.BASE_URL_SCHEMES, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://localhost/v1",
        "http://10.1.2.3",
        "http://[::1]:80",
        "http://169.254.169.254/latest",
        "http://2130706433",  # 127.0.0.1 in a form resolvers accept
        "https://192.168.0.5",
    ],
)
def test_private_base_urls_need_the_operator_s_permission(url: str) -> None:
    with pytest.raises(InvalidArgument, match="CHANNEL_PRIVATE_ADDRESSES"):
        channel_rules.check_url(
            "base_url", url, channel_rules.BASE_URL_SCHEMES, allow_private=False
        )
    assert (
        channel_rules.check_url(
            "base_url", f" {url} ", channel_rules.BASE_URL_SCHEMES, allow_private=True
        )
        == url
    )
    with pytest.raises(InvalidArgument, match="CHANNEL_PRIVATE_ADDRESSES"):
        channel_rules.check_setting(json.dumps({"proxy": url}), allow_private=False)


def test_public_base_urls_are_kept() -> None:
    url = "https://api.example.com/openai"
    assert (
        channel_rules.check_url(
            "base_url", url, channel_rules.BASE_URL_SCHEMES, allow_private=False
        )
        == url
    )


@pytest.mark.parametrize("type_id", [11])
def test_types_without_an_adaptor_are_refused(type_id: int) -> None:
    with pytest.raises(InvalidArgument, match="not supported yet: this relay has no adaptor"):
        channel_rules.check_type(type_id)


@pytest.mark.parametrize("type_id", [2, 5, 36])
def test_task_platform_types_are_accepted(type_id: int) -> None:
    """Midjourney Proxy (Plus) and Suno channels serve the relay's /mj and /suno routes."""
    channel_rules.check_type(type_id)


def test_every_supported_type_has_a_relay_adaptor() -> None:
    adaptors = Adaptors()
    for type_id in SUPPORTED_TYPES:
        channel_rules.check_type(type_id)
        adaptors.for_type(type_id)
    with pytest.raises(LookupError):
        adaptors.for_type(11)
