"""API-key parsing and the token / user / access checks."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from veloera.accounts.v1 import accounts_pb2

from services.relay.auth import (
    Authenticator,
    ParsedKey,
    check_access,
    check_token,
    parse_key,
)
from services.relay.errors import RelayError
from tests.support.relay_auth import entry

KEY = "x" * 48


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"Bearer sk-{KEY}", ParsedKey(KEY, None)),
        (f"Bearer {KEY}", ParsedKey(KEY, None)),
        (f"bearer sk-{KEY}-12", ParsedKey(KEY, 12)),
        (f"sk-{KEY}", ParsedKey(KEY, None)),
        (f"Bearer {KEY}-7", ParsedKey(KEY, 7)),
        (f"Bearer sk-{KEY}-abc", None),
        (f"Bearer sk-{KEY}-²", None),  # a digit to str.isdigit, not to int()
        (f"Bearer sk-{KEY}-" + "9" * 40, None),
        ("Bearer ", None),
        ("Bearer sk-", None),
    ],
)
def test_parse_key(header: str, expected: ParsedKey | None) -> None:
    assert parse_key(header) == expected


def _status_of(fn: object, *args: object, **kwargs: object) -> tuple[int, str]:
    with pytest.raises(RelayError) as info:
        fn(*args, **kwargs)  # type: ignore[operator]
    return info.value.status, info.value.message


def test_enabled_token_passes() -> None:
    check_token(entry(), time.time())


@pytest.mark.parametrize(
    ("token", "user", "status", "message"),
    [
        ({"status": 2}, {}, 401, "token is disabled"),
        ({"status": 3}, {}, 401, "token has expired"),
        ({"status": 4}, {}, 401, "token quota is exhausted"),
        ({"expired_time": 1000}, {}, 401, "token has expired"),
        ({}, {"status": 2}, 403, "user is banned"),
        ({}, {"deleted": True}, 401, "invalid token"),
    ],
)
def test_token_and_user_state(
    token: dict[str, object], user: dict[str, object], status: int, message: str
) -> None:
    assert _status_of(check_token, entry(token=token, user=user), time.time()) == (status, message)


def test_future_expiry_is_fine() -> None:
    check_token(entry(token={"expired_time": int(time.time()) + 3600}), time.time())


def test_common_user_cannot_pin_a_channel() -> None:
    status, message = _status_of(check_access, entry(), model="m", client_ip="1.2.3.4", pinned=3)
    assert (status, message) == (403, "common users cannot specify a channel")
    check_access(entry(user={"role": 10}), model="m", client_ip="1.2.3.4", pinned=3)


def test_model_allow_list() -> None:
    limited = entry(token={"model_limits_enabled": True, "model_limits": ["gpt-4o"]})
    check_access(limited, model="gpt-4o", client_ip="1.2.3.4", pinned=None)
    status, message = _status_of(
        check_access, limited, model="gpt-4o-mini", client_ip="1.2.3.4", pinned=None
    )
    assert (status, message) == (403, "this token may not access model gpt-4o-mini")
    # limits listed but not enabled: every model passes
    open_token = entry(token={"model_limits": ["gpt-4o"]})
    check_access(open_token, model="gpt-4o-mini", client_ip="1.2.3.4", pinned=None)


@pytest.mark.parametrize(
    ("allow", "ip", "allowed"),
    [
        (["10.0.0.1"], "10.0.0.1", True),
        (["10.0.0.1"], "10.0.0.2", False),
        (["10.0.0.0/24"], "10.0.0.77", True),
        (["10.0.0.0/24"], "10.0.1.1", False),
        (["2001:db8::/32"], "2001:db8::1", True),
        (["::1"], "0:0:0:0:0:0:0:1", True),
        (["10.0.0.1"], "", False),
    ],
)
def test_ip_allow_list(allow: list[str], ip: str, allowed: bool) -> None:
    e = entry(token={"allow_ips": allow})
    if allowed:
        check_access(e, model=None, client_ip=ip, pinned=None)
    else:
        assert _status_of(check_access, e, model=None, client_ip=ip, pinned=None)[0] == 403


def test_token_group_must_be_usable() -> None:
    check_access(
        entry(token={"group": "vip"}, usable=("default", "vip")),
        model=None,
        client_ip="",
        pinned=None,
    )
    status, message = _status_of(
        check_access, entry(token={"group": "vip"}), model=None, client_ip="", pinned=None
    )
    assert (status, message) == (403, "token group vip has been disabled")


def test_group_falls_back_to_the_users_group() -> None:
    assert entry(user={"group": "vip"}, usable=("vip",)).group == "vip"
    assert entry(token={"group": "svip"}, user={"group": "vip"}).group == "svip"


class StubAccounts:
    """An in-memory stand-in for the Authenticate call (counts calls)."""

    def __init__(self, fail: grpc.StatusCode | None = None) -> None:
        self.calls = 0
        self.fail = fail

    async def Authenticate(
        self, request: accounts_pb2.AuthenticateRequest, timeout: float
    ) -> accounts_pb2.AuthenticateResponse:
        self.calls += 1
        if self.fail is not None:
            raise grpc.aio.AioRpcError(
                self.fail, grpc.aio.Metadata(), grpc.aio.Metadata(), details="x"
            )
        if request.key != KEY:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.NOT_FOUND, grpc.aio.Metadata(), grpc.aio.Metadata()
            )
        return accounts_pb2.AuthenticateResponse(
            token=accounts_pb2.Token(id=1, status=accounts_pb2.TOKEN_STATUS_ENABLED),
            user=accounts_pb2.User(id=2, status=accounts_pb2.USER_STATUS_ENABLED),
        )


def authenticator(stub: StubAccounts) -> Authenticator:
    return Authenticator(stub, ttl=60, max_size=10)  # type: ignore[arg-type]


async def test_answers_are_cached_until_cleared() -> None:
    stub = StubAccounts()
    auth = authenticator(stub)
    first = await auth.authenticate(KEY)
    assert await auth.authenticate(KEY) is first and stub.calls == 1
    auth.clear()
    await auth.authenticate(KEY)
    assert stub.calls == 2


async def test_unknown_keys_are_401_and_cached() -> None:
    stub = StubAccounts()
    auth = authenticator(stub)
    for _ in range(2):
        with pytest.raises(RelayError) as info:
            await auth.authenticate("y" * 48)
        assert (info.value.status, info.value.message) == (401, "invalid token")
    assert stub.calls == 1


async def test_concurrent_misses_share_one_call() -> None:
    stub = StubAccounts()
    auth = authenticator(stub)
    results = await asyncio.gather(*(auth.authenticate(KEY) for _ in range(5)))
    assert stub.calls == 1 and all(r is results[0] for r in results)


async def test_accounts_down_is_503_and_not_cached() -> None:
    stub = StubAccounts(fail=grpc.StatusCode.UNAVAILABLE)
    auth = authenticator(stub)
    for _ in range(2):
        with pytest.raises(RelayError) as info:
            await auth.authenticate(KEY)
        assert info.value.status == 503
    assert stub.calls == 2


@pytest.mark.parametrize(
    ("setting", "logged"),
    [
        ("", False),
        ('{"show_ip_in_logs": false}', False),
        ('{"show_ip_in_logs": true}', True),
        ("not json", False),
    ],
)
def test_client_ip_is_logged_only_when_the_user_opted_in(setting: str, logged: bool) -> None:
    assert entry(user={"setting": setting}).log_ip is logged


@pytest.mark.parametrize(
    ("setting", "threshold"),
    [("", 0), ('{"quota_warning_threshold": 5000}', 5000), ('{"quota_warning_threshold": -3}', 0)],
)
def test_users_quota_warning_threshold_reaches_settlement(setting: str, threshold: int) -> None:
    assert entry(user={"setting": setting}).quota_warning_threshold == threshold
