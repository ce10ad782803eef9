"""Integration tests of the accounts gRPC service against real PostgreSQL, NATS and gRPC."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg
import grpc
import nats
import pytest
import pytest_asyncio
from nats.aio.subscription import Subscription
from veloera.accounts.v1 import accounts_pb2 as pb
from veloera.accounts.v1 import events_pb2

from services.shared import subjects
from services.shared.errors import error_code_of
from tests.support.accounts_kit import (
    PASSWORD,
    TIMEOUT,
    channel_message,
    ensure_root,
    make_user,
    next_event,
    rpc_error,
    unique,
)
from tests.support.clients import AccountsClient
from tests.support.helpers import admin_channel

pytestmark = pytest.mark.integration


class Infra(Protocol):
    database_url: str
    nats_url: str


if TYPE_CHECKING:
    Stub = AccountsClient


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def stub(accounts_addr: str) -> AsyncIterator[Stub]:
    async with admin_channel(accounts_addr) as channel:
        yield AccountsClient(channel)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def root(stub: Stub) -> pb.User:
    return await ensure_root(stub)


async def make_token(stub: Stub, user: pb.User, **fields: Any) -> pb.Token:
    token = pb.Token(name=fields.pop("name", "my key"), expired_time=-1, **fields)
    return await stub.CreateToken(
        pb.CreateTokenRequest(user_id=user.id, token=token), timeout=TIMEOUT
    )


async def routing_version(stub: Stub) -> int:
    reply = await stub.GetRoutingSnapshot(pb.GetRoutingSnapshotRequest(), timeout=TIMEOUT)
    return reply.version


@pytest_asyncio.fixture(loop_scope="session")
async def changes(infra: Infra) -> AsyncIterator[Subscription]:
    nc = await nats.connect(infra.nats_url)
    sub = await nc.subscribe(subjects.ACCOUNTS_CHANGED)
    await nc.flush()
    yield sub
    await nc.drain()


# ---------------------------------------------------------------- setup and sessions


async def test_setup_runs_only_once(stub: Stub, root: pb.User) -> None:
    assert root.role == pb.ROLE_ROOT
    status = await stub.GetSetupStatus(pb.GetSetupStatusRequest(), timeout=TIMEOUT)
    assert status.initialized and status.root_exists and status.initialized_time > 0
    again = pb.SetupRequest(username=unique("r"), password="another-pass1")
    error = await rpc_error(stub.Setup(again, timeout=TIMEOUT))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == "system already initialized"


async def test_login_succeeds_and_rejects_wrong_password_and_disabled_user(
    stub: Stub, root: pb.User
) -> None:
    user = await make_user(stub, root)
    reply = await stub.Login(pb.LoginRequest(username=user.username, password=PASSWORD))
    assert reply.user.id == user.id
    assert len(reply.session_id) >= 43
    assert reply.expire_time > time.time() + 29 * 24 * 3600

    for name, password in [(user.username, "wrong-password"), (unique("no"), PASSWORD)]:
        error = await rpc_error(stub.Login(pb.LoginRequest(username=name, password=password)))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error.details() == "username or password is wrong"

    await stub.ManageUser(pb.ManageUserRequest(actor_id=root.id, id=user.id, action="disable"))
    error = await rpc_error(stub.Login(pb.LoginRequest(username=user.username, password=PASSWORD)))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == "user is disabled"


async def test_resolve_principal_by_session_and_access_token(stub: Stub, root: pb.User) -> None:
    user = await make_user(stub, root)
    login = await stub.Login(pb.LoginRequest(username=user.username, password=PASSWORD))
    by_session = pb.ResolvePrincipalRequest(session_id=login.session_id, claimed_user_id=user.id)
    assert (await stub.ResolvePrincipal(by_session)).id == user.id

    wrong_claim = pb.ResolvePrincipalRequest(session_id=login.session_id, claimed_user_id=root.id)
    error = await rpc_error(stub.ResolvePrincipal(wrong_claim))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == "Veloera-User header does not match the logged-in user"

    issued = await stub.IssueAccessToken(pb.IssueAccessTokenRequest(user_id=user.id))
    assert len(issued.access_token) == 32
    by_token = pb.ResolvePrincipalRequest(access_token=issued.access_token, claimed_user_id=user.id)
    assert (await stub.ResolvePrincipal(by_token)).username == user.username
    wrong = pb.ResolvePrincipalRequest(access_token=issued.access_token, claimed_user_id=root.id)
    assert (await rpc_error(stub.ResolvePrincipal(wrong))).code() == (
        grpc.StatusCode.PERMISSION_DENIED
    )

    await stub.Logout(pb.LogoutRequest(session_id=login.session_id))
    error = await rpc_error(stub.ResolvePrincipal(by_session))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    unknown = pb.ResolvePrincipalRequest(session_id="x" * 43, claimed_user_id=user.id)
    assert (await rpc_error(stub.ResolvePrincipal(unknown))).code() == (
        grpc.StatusCode.UNAUTHENTICATED
    )


# ---------------------------------------------------------------- users and roles


async def test_role_escalation_is_rejected(stub: Stub, root: pb.User) -> None:
    admin = await make_user(stub, root, role=pb.ROLE_ADMIN, prefix="adm")
    other_admin = await make_user(stub, root, role=pb.ROLE_ADMIN, prefix="adm")
    common = await make_user(stub, admin)
    assert common.role == pb.ROLE_COMMON

    denied = [
        stub.ManageUser(pb.ManageUserRequest(actor_id=admin.id, id=common.id, action="promote")),
        stub.ManageUser(pb.ManageUserRequest(actor_id=admin.id, id=root.id, action="disable")),
        stub.ManageUser(
            pb.ManageUserRequest(actor_id=admin.id, id=other_admin.id, action="demote")
        ),
        stub.CreateUser(
            pb.CreateUserRequest(
                actor_id=admin.id, username=unique("x"), password=PASSWORD, role=pb.ROLE_ADMIN
            )
        ),
        stub.UpdateUser(pb.UpdateUserRequest(actor_id=admin.id, id=root.id, password="hijacked1")),
        stub.UpdateUser(pb.UpdateUserRequest(actor_id=common.id, id=common.id, group="vip")),
        stub.UpdateOption(pb.UpdateOptionRequest(actor_id=admin.id, key="Notice", value="hi")),
    ]
    for call in denied:
        assert (await rpc_error(call)).code() == grpc.StatusCode.PERMISSION_DENIED

    root_demote = pb.ManageUserRequest(actor_id=root.id, id=root.id, action="demote")
    assert (await rpc_error(stub.ManageUser(root_demote))).code() == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    promoted = await stub.ManageUser(
        pb.ManageUserRequest(actor_id=root.id, id=common.id, action="promote")
    )
    assert promoted.role == pb.ROLE_ADMIN
    # Now an admin too: another admin cannot act on an equal role.
    demote = pb.ManageUserRequest(actor_id=admin.id, id=common.id, action="demote")
    assert (await rpc_error(stub.ManageUser(demote))).code() == grpc.StatusCode.PERMISSION_DENIED


async def test_update_user_applies_only_present_fields(stub: Stub, root: pb.User) -> None:
    user = await make_user(stub, root)
    updated = await stub.UpdateUser(
        pb.UpdateUserRequest(actor_id=root.id, id=user.id, display_name="Shown", group="vip")
    )
    assert (updated.display_name, updated.group, updated.username) == (
        "Shown",
        "vip",
        user.username,
    )
    without_old = pb.UpdateUserRequest(actor_id=user.id, id=user.id, password="newpass99")
    assert (await rpc_error(stub.UpdateUser(without_old))).code() == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    await stub.UpdateUser(
        pb.UpdateUserRequest(
            actor_id=user.id, id=user.id, password="newpass99", old_password=PASSWORD
        )
    )
    login = await stub.Login(pb.LoginRequest(username=user.username, password="newpass99"))
    assert login.user.display_name == "Shown"


async def test_deleted_username_cannot_be_registered_again(stub: Stub, root: pb.User) -> None:
    user = await make_user(stub, root)
    deleted = await stub.ManageUser(
        pb.ManageUserRequest(actor_id=root.id, id=user.id, action="delete")
    )
    assert deleted.deleted
    again = pb.CreateUserRequest(actor_id=root.id, username=user.username, password=PASSWORD)
    assert (await rpc_error(stub.CreateUser(again))).code() == grpc.StatusCode.ALREADY_EXISTS
    assert (await rpc_error(stub.GetUser(pb.GetUserRequest(id=user.id)))).code() == (
        grpc.StatusCode.NOT_FOUND
    )


async def test_list_users_pages_newest_first(stub: Stub, root: pb.User) -> None:
    prefix = uuid.uuid4().hex[:6]
    created = []
    for index in range(3):
        request = pb.CreateUserRequest(
            actor_id=root.id, username=f"{prefix}{index}", password=PASSWORD
        )
        created.append(await stub.CreateUser(request))
    page = await stub.ListUsers(pb.ListUsersRequest(page=1, page_size=2, keyword=prefix))
    assert page.total == 3
    assert [user.id for user in page.users] == [created[2].id, created[1].id]
    second = await stub.ListUsers(pb.ListUsersRequest(page=2, page_size=2, keyword=prefix))
    assert [user.id for user in second.users] == [created[0].id]


# ---------------------------------------------------------------- tokens


async def test_token_lifecycle_is_private_to_its_owner(stub: Stub, root: pb.User) -> None:
    owner = await make_user(stub, root)
    stranger = await make_user(stub, root)
    token = await make_token(stub, owner, name="laptop", model_limits=["gpt-4o"])
    assert len(token.key) == 48 and token.key.isalnum()
    assert token.status == pb.TOKEN_STATUS_ENABLED and token.expired_time == -1

    listed = await stub.ListTokens(pb.ListTokensRequest(user_id=owner.id, keyword="lapt"))
    assert [(t.id, t.key) for t in listed.tokens] == [(token.id, token.key)]
    got = await stub.GetToken(pb.GetTokenRequest(user_id=owner.id, id=token.id))
    assert got.key == token.key and list(got.model_limits) == ["gpt-4o"]
    hidden = stub.GetToken(pb.GetTokenRequest(user_id=stranger.id, id=token.id))
    assert (await rpc_error(hidden)).code() == grpc.StatusCode.NOT_FOUND
    assert (await stub.ListTokens(pb.ListTokensRequest(user_id=stranger.id))).total == 0

    changed = pb.Token(
        id=token.id,
        name="desktop",
        expired_time=-1,
        allow_ips=["10.0.0.0/8", "2001:db8::/32", "192.168.1.7"],
    )
    updated = await stub.UpdateToken(pb.UpdateTokenRequest(user_id=owner.id, token=changed))
    assert updated.name == "desktop"
    assert list(updated.allow_ips) == ["10.0.0.0/8", "2001:db8::/32", "192.168.1.7"]
    assert list(updated.model_limits) == []  # a full update replaces every field

    disable = pb.Token(id=token.id, status=pb.TOKEN_STATUS_DISABLED)
    status_only = pb.UpdateTokenRequest(user_id=owner.id, token=disable, status_only=True)
    disabled = await stub.UpdateToken(status_only)
    assert disabled.status == pb.TOKEN_STATUS_DISABLED and disabled.name == "desktop"

    stolen = stub.DeleteTokens(pb.DeleteTokensRequest(user_id=stranger.id, ids=[token.id]))
    assert (await stolen).deleted == 0
    deleted = await stub.DeleteTokens(pb.DeleteTokensRequest(user_id=owner.id, ids=[token.id]))
    assert deleted.deleted == 1
    gone = stub.GetToken(pb.GetTokenRequest(user_id=owner.id, id=token.id))
    assert (await rpc_error(gone)).code() == grpc.StatusCode.NOT_FOUND


async def test_token_key_is_not_stored_in_plaintext(
    stub: Stub, root: pb.User, infra: Infra
) -> None:
    owner = await make_user(stub, root)
    token = await make_token(stub, owner)
    conn = await asyncpg.connect(infra.database_url)
    try:
        row = await conn.fetchrow("SELECT * FROM accounts.tokens WHERE id = $1", token.id)
    finally:
        await conn.close()
    assert row is not None
    assert all(token.key not in str(value) for value in row.values())


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "n" * 31}, "token name must be at most 30 characters"),
        ({"name": ""}, "token name is required"),
        ({"allow_ips": ["10.0.0.0/33"]}, "invalid IP or CIDR in allow_ips: '10.0.0.0/33'"),
        ({"allow_ips": ["not-an-ip"]}, "invalid IP or CIDR in allow_ips: 'not-an-ip'"),
        ({"expired_time": 1_000_000}, "expired_time must be -1 (never) or a future unix time"),
    ],
)
async def test_invalid_token_fields_are_rejected(
    stub: Stub, root: pb.User, fields: dict[str, Any], message: str
) -> None:
    owner = await make_user(stub, root)
    token = pb.Token(**{"name": "ok", "expired_time": -1, **fields})
    error = await rpc_error(stub.CreateToken(pb.CreateTokenRequest(user_id=owner.id, token=token)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == message
    assert (await stub.ListTokens(pb.ListTokensRequest(user_id=owner.id))).total == 0


async def test_expired_token_cannot_be_re_enabled(stub: Stub, root: pb.User) -> None:
    owner = await make_user(stub, root)
    token = await make_token(stub, owner)
    past = pb.Token(
        id=token.id, name=token.name, expired_time=1_000_000, status=pb.TOKEN_STATUS_DISABLED
    )
    await stub.UpdateToken(pb.UpdateTokenRequest(user_id=owner.id, token=past))
    enable = pb.Token(id=token.id, status=pb.TOKEN_STATUS_ENABLED)
    request = pb.UpdateTokenRequest(user_id=owner.id, token=enable, status_only=True)
    error = await rpc_error(stub.UpdateToken(request))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == "token has expired, change its expiry first"


async def test_authenticate_returns_token_user_and_groups(stub: Stub, root: pb.User) -> None:
    owner = await make_user(stub, root)
    await stub.UpdateUser(pb.UpdateUserRequest(actor_id=root.id, id=owner.id, group="team"))
    token = await make_token(stub, owner, allow_ips=["127.0.0.1"])
    reply = await stub.Authenticate(pb.AuthenticateRequest(key=token.key))
    assert reply.token.id == token.id and reply.token.key == ""
    assert list(reply.token.allow_ips) == ["127.0.0.1"]
    assert reply.user.id == owner.id and reply.user.group == "team"
    assert {"default", "vip", "team"} <= set(reply.usable_groups)

    unknown = await rpc_error(stub.Authenticate(pb.AuthenticateRequest(key="a" * 48)))
    assert unknown.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (unknown.details(), error_code_of(unknown)) == ("invalid token", "invalid_token")

    await stub.DeleteTokens(pb.DeleteTokensRequest(user_id=owner.id, ids=[token.id]))
    deleted = await rpc_error(stub.Authenticate(pb.AuthenticateRequest(key=token.key)))
    assert error_code_of(deleted) == "invalid_token"


async def test_token_change_publishes_event(
    stub: Stub, root: pb.User, changes: Subscription
) -> None:
    owner = await make_user(stub, root)
    token = await make_token(stub, owner)
    event = await next_event(
        changes, lambda e: e.kind == events_pb2.CHANGE_KIND_TOKEN and token.id in e.ids
    )
    assert event.occur_time > 0


# ---------------------------------------------------------------- channels and routing


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model_mapping": "[1, 2]"}, "model_mapping must be a JSON object, got list"),
        ({"param_override": "{oops"}, "param_override must be a JSON object: invalid JSON"),
        ({"type": 999}, "unknown channel type 999"),
        ({"models": []}, "at least one model is required"),
        ({"key": ""}, "key is required"),
    ],
)
async def test_invalid_channel_is_rejected_and_nothing_changes(
    stub: Stub, root: pb.User, fields: dict[str, Any], message: str
) -> None:
    version = await routing_version(stub)
    channel = channel_message(**fields)
    request = pb.SaveChannelRequest(actor_id=root.id, channel=channel)
    error = await rpc_error(stub.SaveChannel(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == message
    listed = await stub.ListChannels(pb.ListChannelsRequest(keyword=channel.name))
    assert listed.total == 0
    assert await routing_version(stub) == version


async def test_channel_save_rebuilds_abilities_and_publishes(
    stub: Stub, root: pb.User, changes: Subscription
) -> None:
    version = await routing_version(stub)
    saved = await stub.SaveChannel(
        pb.SaveChannelRequest(actor_id=root.id, channel=channel_message())
    )
    assert saved.id > 0 and saved.status == pb.CHANNEL_STATUS_ENABLED
    assert "first-key" not in saved.key and len(saved.keys) == 2
    event = await next_event(
        changes, lambda e: e.kind == events_pb2.CHANGE_KIND_CHANNEL and saved.id in e.ids
    )
    assert event.routing_version > version

    snapshot = await stub.GetRoutingSnapshot(pb.GetRoutingSnapshotRequest(known_version=version))
    assert not snapshot.unchanged and snapshot.version >= event.routing_version
    rows = {(a.group, a.model) for a in snapshot.abilities if a.channel_id == saved.id}
    assert rows == {("default", "gpt-4o"), ("default", "GPT-4o"), ("vip", "gpt-4o"),
                    ("vip", "GPT-4o")}  # fmt: skip
    routed = next(c for c in snapshot.channels if c.id == saved.id)
    assert [k.key for k in routed.keys] == ["sk-first-key-aaaa", "sk-second-key-bbbb"]

    update = channel_message(id=saved.id, name=saved.name, key="", models=["claude-3"])
    await stub.SaveChannel(pb.SaveChannelRequest(actor_id=root.id, channel=update))
    snapshot = await stub.GetRoutingSnapshot(pb.GetRoutingSnapshotRequest())
    rows = {(a.group, a.model) for a in snapshot.abilities if a.channel_id == saved.id}
    assert rows == {("default", "claude-3"), ("vip", "claude-3")}
    routed = next(c for c in snapshot.channels if c.id == saved.id)
    assert len(routed.keys) == 2  # an empty key keeps the stored keys

    same = await stub.GetRoutingSnapshot(
        pb.GetRoutingSnapshotRequest(known_version=snapshot.version)
    )
    assert same.unchanged and same.version == snapshot.version and not same.channels

    deleted = await stub.DeleteChannels(pb.DeleteChannelsRequest(actor_id=root.id, ids=[saved.id]))
    assert deleted.deleted == 1
    snapshot = await stub.GetRoutingSnapshot(pb.GetRoutingSnapshotRequest())
    assert all(a.channel_id != saved.id for a in snapshot.abilities)


async def test_routing_delta_carries_only_the_changed_channels(stub: Stub, root: pb.User) -> None:
    def delta(since: int) -> Any:
        return stub.GetRoutingDelta(pb.GetRoutingDeltaRequest(since_version=since), timeout=TIMEOUT)

    await stub.SaveChannel(pb.SaveChannelRequest(actor_id=root.id, channel=channel_message()))
    since = await routing_version(stub)
    saved = await stub.SaveChannel(
        pb.SaveChannelRequest(actor_id=root.id, channel=channel_message(models=["delta-m"]))
    )
    changed = await delta(since)
    assert not changed.resync and changed.version == since + 1
    assert list(changed.channel_ids) == [saved.id] and [c.id for c in changed.channels] == [
        saved.id
    ]
    assert [k.key for k in changed.channels[0].keys] == ["sk-first-key-aaaa", "sk-second-key-bbbb"]
    assert {(a.group, a.model, a.channel_id) for a in changed.abilities} == {
        ("default", "delta-m", saved.id), ("vip", "delta-m", saved.id)}  # fmt: skip
    assert not changed.options_changed and not changed.options

    same = await delta(changed.version)
    assert same.version == changed.version and not same.resync and not same.channel_ids

    disabled = channel_message(id=saved.id, name=saved.name, key="", models=["delta-m"],
                               status=pb.CHANNEL_STATUS_MANUALLY_DISABLED)  # fmt: skip
    await stub.SaveChannel(pb.SaveChannelRequest(actor_id=root.id, channel=disabled))
    await stub.UpdateOption(
        pb.UpdateOptionRequest(actor_id=root.id, key="AutomaticDisableChannelEnabled", value="true")
    )
    gone = await delta(changed.version)  # two versions at once: the disable and the option
    assert gone.version == changed.version + 2
    assert list(gone.channel_ids) == [saved.id] and not gone.channels and not gone.abilities
    assert gone.options_changed and any(
        o.key == "AutomaticDisableChannelEnabled" for o in gone.options
    )

    assert (await delta(0)).resync  # a relay without a version takes the snapshot
    await stub.FixAbilities(pb.FixAbilitiesRequest(actor_id=root.id))
    assert (await delta(gone.version)).resync  # a change to everything: the snapshot too


async def test_get_channel_masks_keys(stub: Stub, root: pb.User) -> None:
    saved = await stub.SaveChannel(
        pb.SaveChannelRequest(actor_id=root.id, channel=channel_message(key="sk-abcdefghijkl"))
    )
    got = await stub.GetChannel(pb.GetChannelRequest(id=saved.id))
    assert got.key == "sk-a*******ijkl"
    assert got.keys[0].key == "sk-a*******ijkl"

    # Saving the form back with the masked key keeps the real key and adds the new one.
    echoed = channel_message(id=saved.id, name=saved.name, key=f"{got.key}\nsk-new-key-zzzz")
    await stub.SaveChannel(pb.SaveChannelRequest(actor_id=root.id, channel=echoed))
    snapshot = await stub.GetRoutingSnapshot(pb.GetRoutingSnapshotRequest())
    routed = next(c for c in snapshot.channels if c.id == saved.id)
    assert [k.key for k in routed.keys] == ["sk-abcdefghijkl", "sk-new-key-zzzz"]


async def test_reported_auth_failures_disable_keys_then_the_channel(
    stub: Stub, root: pb.User
) -> None:
    option = pb.UpdateOptionRequest(
        actor_id=root.id, key="AutomaticDisableChannelEnabled", value="true"
    )
    await stub.UpdateOption(option)
    saved = await stub.SaveChannel(
        pb.SaveChannelRequest(actor_id=root.id, channel=channel_message())
    )
    first, second = saved.keys

    def report(key_id: int, **fields: Any) -> pb.ReportChannelResultRequest:
        return pb.ReportChannelResultRequest(channel_id=saved.id, key_id=key_id, **fields)

    reply = await stub.ReportChannelResult(report(first.id, status_code=401, error_message="bad"))
    assert reply.key_disabled and not reply.channel_disabled
    reply = await stub.ReportChannelResult(report(second.id, status_code=429, error_message="slow"))
    assert not reply.key_disabled
    reply = await stub.ReportChannelResult(
        report(second.id, status_code=400, error_code="invalid_api_key", error_message="revoked")
    )
    assert reply.key_disabled and reply.channel_disabled

    got = await stub.GetChannel(pb.GetChannelRequest(id=saved.id))
    assert got.status == pb.CHANNEL_STATUS_AUTO_DISABLED and "revoked" in got.status_reason
    assert [k.request_count for k in got.keys] == [1, 2]
    assert [k.failure_count for k in got.keys] == [1, 2]
    snapshot = await stub.GetRoutingSnapshot(pb.GetRoutingSnapshotRequest())
    abilities = [a for a in snapshot.abilities if a.channel_id == saved.id]
    assert abilities and not any(a.enabled for a in abilities)


# ---------------------------------------------------------------- options


async def test_options_are_validated_hidden_and_published(
    stub: Stub, root: pb.User, changes: Subscription
) -> None:
    bad = pb.UpdateOptionRequest(actor_id=root.id, key="UserUsableGroups", value="[1]")
    error = await rpc_error(stub.UpdateOption(bad))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT

    secret = pb.UpdateOptionRequest(actor_id=root.id, key="SMTPToken", value="hunter2")
    await stub.UpdateOption(secret)
    event = await next_event(
        changes,
        lambda e: e.kind == events_pb2.CHANGE_KIND_OPTION and "SMTPToken" in e.option_keys,
    )
    assert event.routing_version > 0
    public = await stub.ListOptions(pb.ListOptionsRequest())
    assert "SMTPToken" not in {o.key for o in public.options}
    everything = await stub.ListOptions(pb.ListOptionsRequest(include_secrets=True))
    assert {o.key: o.value for o in everything.options}["SMTPToken"] == "hunter2"


async def test_a_tencent_channel_is_refused_until_its_adaptor_exists(
    stub: Stub, root: pb.User
) -> None:
    channel = channel_message(type=11, key="palm-secret")
    error = await rpc_error(
        stub.SaveChannel(pb.SaveChannelRequest(actor_id=root.id, channel=channel))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "channel type 11 (Google PaLM2) is not supported yet" in (error.details() or "")
    assert (await stub.ListChannels(pb.ListChannelsRequest(keyword=channel.name))).total == 0


async def test_an_admin_moves_a_channel_only_by_entering_its_keys_again(
    stub: Stub, root: pb.User
) -> None:
    admin = await make_user(stub, root, role=pb.ROLE_ADMIN, prefix="adm")
    saved = await stub.SaveChannel(
        pb.SaveChannelRequest(
            actor_id=root.id,
            channel=channel_message(key="sk-stored-secret-1", base_url="https://api.example.com"),
        )
    )
    form = await stub.GetChannel(pb.GetChannelRequest(id=saved.id))  # what the console shows
    moves: list[dict[str, Any]] = [
        {"base_url": "https://attacker.example"},
        {"setting": '{"proxy": "http://attacker.example:3128"}'},
        {"type": 40},  # SiliconFlow's default host
    ]
    for change in moves:
        for key in ("", form.key):  # keep the stored key, or echo its masked form
            fields: dict[str, Any] = {"base_url": form.base_url, **change}
            moved = channel_message(id=saved.id, name=saved.name, key=key, **fields)
            error = await rpc_error(
                stub.SaveChannel(pb.SaveChannelRequest(actor_id=admin.id, channel=moved))
            )
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED, change
            assert "entering its keys again" in (error.details() or "")
    got = await stub.GetChannel(pb.GetChannelRequest(id=saved.id))
    assert got.base_url == "https://api.example.com" and got.type == 1

    # Other edits need no key; a move with the key typed in again is allowed.
    renamed = channel_message(id=saved.id, name=saved.name, base_url=form.base_url, priority=9)
    await stub.SaveChannel(pb.SaveChannelRequest(actor_id=admin.id, channel=renamed))
    moved = channel_message(
        id=saved.id, name=saved.name, base_url="https://other.example", key="sk-typed-by-admin"
    )
    await stub.SaveChannel(pb.SaveChannelRequest(actor_id=admin.id, channel=moved))
    snapshot = await stub.GetRoutingSnapshot(pb.GetRoutingSnapshotRequest())
    routed = next(c for c in snapshot.channels if c.id == saved.id)
    assert routed.base_url == "https://other.example"
    assert [k.key for k in routed.keys] == ["sk-typed-by-admin"]

    # Root may move a channel with its stored keys.
    back = channel_message(id=saved.id, name=saved.name, base_url="https://api.example.com", key="")
    await stub.SaveChannel(pb.SaveChannelRequest(actor_id=root.id, channel=back))
    got = await stub.GetChannel(pb.GetChannelRequest(id=saved.id))
    assert got.base_url == "https://api.example.com" and len(got.keys) == 1


async def test_channel_urls_are_validated(stub: Stub, root: pb.User) -> None:
    for base_url in ("ftp://example.com", "example.com", "http://[::1", "http://h:99999"):
        channel = channel_message(base_url=base_url)
        error = await rpc_error(
            stub.SaveChannel(pb.SaveChannelRequest(actor_id=root.id, channel=channel))
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "base_url must be an http or https URL" in (error.details() or ""), base_url
