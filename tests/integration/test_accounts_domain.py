"""Accounts over gRPC: login throttling, registration, default keys, audits, events, inbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import asyncpg
import grpc
import nats
import pytest
import pytest_asyncio
from nats.aio.subscription import Subscription
from veloera.accounts.v1 import accounts_pb2 as pb
from veloera.accounts.v1 import events_pb2

from services.cli.infra import free_port
from services.cli.supervisor import Child, ServiceSpec, start_all, stop_all
from services.shared import subjects
from services.shared.errors import error_code_of
from tests.support.accounts_kit import (
    PASSWORD,
    TIMEOUT,
    ensure_root,
    make_user,
    next_event,
    rpc_error,
    unique,
)
from tests.support.clients import AccountsClient
from tests.support.helpers import admin_channel

pytestmark = pytest.mark.integration

if TYPE_CHECKING:
    Stub = AccountsClient


class Infra(Protocol):
    database_url: str
    nats_url: str
    work_dir: Path


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def stub(accounts_addr: str) -> AsyncIterator[Stub]:
    async with admin_channel(accounts_addr) as channel:
        yield AccountsClient(channel)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def root(stub: Stub) -> pb.User:
    return await ensure_root(stub)


@pytest_asyncio.fixture(loop_scope="session")
async def changes(infra: Infra) -> AsyncIterator[Subscription]:
    nc = await nats.connect(infra.nats_url)
    sub = await nc.subscribe(subjects.ACCOUNTS_CHANGED)
    await nc.flush()
    yield sub
    await nc.drain()


@pytest.fixture(scope="module")
def generating_accounts(service_env: dict[str, str], infra: Infra) -> Iterator[str]:
    """A second accounts replica (same database) started with GENERATE_DEFAULT_TOKEN=true."""
    port = free_port()
    env = {
        **service_env,
        "ACCOUNTS_PORT": str(port),
        "ACCOUNTS_METRICS_PORT": str(free_port()),
        "GENERATE_DEFAULT_TOKEN": "true",
    }
    child = Child(
        ServiceSpec("accounts", grpc_addr=f"127.0.0.1:{port}"),
        env,
        log_path=infra.work_dir / "accounts-default-token.log",
    )
    asyncio.run(start_all([child]))
    try:
        yield child.spec.grpc_addr
    finally:
        stop_all([child])


async def _set_option(stub: Stub, root: pb.User, key: str, value: str) -> None:
    await stub.UpdateOption(pb.UpdateOptionRequest(actor_id=root.id, key=key, value=value))


# ---------------------------------------------------------------- login throttling


async def test_five_failures_lock_that_address_for_the_account_and_say_for_how_long(
    stub: Stub, root: pb.User
) -> None:
    user = await make_user(stub, root)
    ip = "198.51.100.7"
    for _ in range(5):
        wrong = pb.LoginRequest(username=user.username, password="wrong-pass", client_ip=ip)
        error = await rpc_error(stub.Login(wrong, timeout=TIMEOUT))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    right = pb.LoginRequest(username=user.username, password=PASSWORD, client_ip=ip)
    locked = await rpc_error(stub.Login(right, timeout=TIMEOUT))
    assert locked.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_code_of(locked) == "login_locked"
    details = locked.details() or ""
    assert "locked" in details and "15 more minutes" in details
    # The owner elsewhere is not locked out by someone else's guesses.
    owner = pb.LoginRequest(username=user.username, password=PASSWORD, client_ip="198.51.100.8")
    assert (await stub.Login(owner, timeout=TIMEOUT)).user.id == user.id
    other = await make_user(stub, root)
    login = pb.LoginRequest(username=other.username, password=PASSWORD, client_ip=ip)
    assert (await stub.Login(login, timeout=TIMEOUT)).user.id == other.id


async def test_parallel_wrong_guesses_are_counted_atomically(stub: Stub, root: pb.User) -> None:
    user = await make_user(stub, root)
    ip = "198.51.100.77"
    wrong = pb.LoginRequest(username=user.username, password="wrong-pass", client_ip=ip)
    errors = await asyncio.gather(*(rpc_error(stub.Login(wrong, timeout=30)) for _ in range(50)))
    checked = [e for e in errors if e.code() == grpc.StatusCode.UNAUTHENTICATED]
    assert len(checked) == 5
    assert all(error_code_of(e) == "login_locked" for e in errors if e not in checked)


async def test_guesses_from_many_addresses_slow_the_account_down_without_locking_it(
    stub: Stub, root: pb.User
) -> None:
    user = await make_user(stub, root)
    for n in range(10):
        wrong = pb.LoginRequest(username=user.username, password="wrong", client_ip=f"192.0.2.{n}")
        await rpc_error(stub.Login(wrong, timeout=TIMEOUT))
    owner = pb.LoginRequest(username=user.username, password=PASSWORD, client_ip="192.0.2.200")
    slowed = await rpc_error(stub.Login(owner, timeout=TIMEOUT))
    assert error_code_of(slowed) == "login_throttled"
    assert "second" in (slowed.details() or "")
    await asyncio.sleep(6)  # LOGIN_ACCOUNT_SLOWDOWN_SECONDS (5) after the last failure
    assert (await stub.Login(owner, timeout=TIMEOUT)).user.id == user.id


async def test_twenty_failures_from_one_ip_lock_that_ip_only(stub: Stub, root: pb.User) -> None:
    ip = "203.0.113.99"
    for attempt in range(20):
        wrong = pb.LoginRequest(username=f"nobody{attempt}", password="x" * 8, client_ip=ip)
        await rpc_error(stub.Login(wrong, timeout=TIMEOUT))
    user = await make_user(stub, root)
    from_ip = pb.LoginRequest(username=user.username, password=PASSWORD, client_ip=ip)
    locked = await rpc_error(stub.Login(from_ip, timeout=TIMEOUT))
    assert error_code_of(locked) == "login_locked"
    assert "IP" in (locked.details() or "")
    elsewhere = pb.LoginRequest(username=user.username, password=PASSWORD, client_ip="203.0.113.1")
    assert (await stub.Login(elsewhere, timeout=TIMEOUT)).user.id == user.id


async def test_failures_are_stored_in_postgres_for_every_replica(
    stub: Stub, root: pb.User, infra: Infra
) -> None:
    user = await make_user(stub, root)
    wrong = pb.LoginRequest(username=user.username, password="nope-nope", client_ip="192.0.2.5")
    await rpc_error(stub.Login(wrong, timeout=TIMEOUT))
    conn = await asyncpg.connect(infra.database_url)
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM accounts.login_failures WHERE scope = 'user' AND subject = $1",
            user.username,
        )
    finally:
        await conn.close()
    assert count == 1


# ---------------------------------------------------------------- registration


async def test_register_respects_toggles_and_credits_the_inviter(
    stub: Stub, root: pb.User, saved_options: None
) -> None:
    inviter = await make_user(stub, root)
    await _set_option(stub, root, "PasswordRegisterEnabled", "false")
    closed = pb.RegisterRequest(username=unique("r"), password=PASSWORD)
    error = await rpc_error(stub.Register(closed, timeout=TIMEOUT))
    assert error_code_of(error) == "password_register_disabled"
    await _set_option(stub, root, "PasswordRegisterEnabled", "true")
    await _set_option(stub, root, "RegisterEnabled", "false")
    error = await rpc_error(stub.Register(closed, timeout=TIMEOUT))
    assert error_code_of(error) == "register_disabled"
    await _set_option(stub, root, "RegisterEnabled", "true")
    request = pb.RegisterRequest(username=unique("r"), password=PASSWORD, aff_code=inviter.aff_code)
    reply = await stub.Register(request, timeout=TIMEOUT)
    assert reply.user.inviter_id == inviter.id and reply.default_token.id == 0
    again = await stub.GetUser(pb.GetUserRequest(id=inviter.id))
    assert again.aff_count == inviter.aff_count + 1


async def test_register_rejects_bad_usernames_and_passwords(stub: Stub) -> None:
    for username, password in (("x" * 13, PASSWORD), (unique("r"), "short"), ("", PASSWORD)):
        request = pb.RegisterRequest(username=username, password=password)
        error = await rpc_error(stub.Register(request, timeout=TIMEOUT))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_generate_default_token_creates_an_unlimited_key(
    generating_accounts: str, root: pb.User
) -> None:
    async with admin_channel(generating_accounts) as channel:
        replica = AccountsClient(channel)
        username = unique("g")
        request = pb.RegisterRequest(username=username, password=PASSWORD)
        reply = await replica.Register(request, timeout=TIMEOUT)
        token = reply.default_token
        assert token.id and token.unlimited_quota and len(token.key) == 48
        assert token.name == f"{username}的初始令牌"
        auth = await replica.Authenticate(pb.AuthenticateRequest(key=token.key))
        assert auth.user.id == reply.user.id


# ---------------------------------------------------------------- users


async def test_disabling_a_user_publishes_and_stops_their_credentials(
    stub: Stub, root: pb.User, changes: Subscription
) -> None:
    user = await make_user(stub, root)
    token = await stub.CreateToken(
        pb.CreateTokenRequest(user_id=user.id, token=pb.Token(name="k", expired_time=-1))
    )
    login = await stub.Login(pb.LoginRequest(username=user.username, password=PASSWORD))
    manage = pb.ManageUserRequest(actor_id=root.id, id=user.id, action="disable")
    await stub.ManageUser(manage)
    event = await next_event(
        changes, lambda e: e.kind == events_pb2.CHANGE_KIND_USER and user.id in e.ids
    )
    assert list(event.ids) == [user.id]
    session = pb.ResolvePrincipalRequest(session_id=login.session_id, claimed_user_id=user.id)
    error = await rpc_error(stub.ResolvePrincipal(session))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    auth = await stub.Authenticate(pb.AuthenticateRequest(key=token.key))
    assert auth.user.status == pb.USER_STATUS_DISABLED


async def test_self_delete_soft_deletes_and_root_cannot(stub: Stub, root: pb.User) -> None:
    user = await make_user(stub, root)
    await stub.DeleteUser(pb.DeleteUserRequest(actor_id=user.id, id=user.id))
    error = await rpc_error(stub.GetUser(pb.GetUserRequest(id=user.id)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    refused = await rpc_error(stub.DeleteUser(pb.DeleteUserRequest(actor_id=root.id, id=root.id)))
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_list_users_filters_by_role_and_status(stub: Stub, root: pb.User) -> None:
    admin = await make_user(stub, root, role=pb.ROLE_ADMIN, prefix="fa")
    await stub.ManageUser(pb.ManageUserRequest(actor_id=root.id, id=admin.id, action="disable"))
    reply = await stub.ListUsers(
        pb.ListUsersRequest(
            keyword=admin.username, role=pb.ROLE_ADMIN, status=pb.USER_STATUS_DISABLED
        )
    )
    assert [u.id for u in reply.users] == [admin.id] and reply.total == 1
    none = await stub.ListUsers(pb.ListUsersRequest(keyword=admin.username, role=pb.ROLE_COMMON))
    assert none.total == 0


async def test_sessions_are_listed_and_revocable(stub: Stub, root: pb.User) -> None:
    user = await make_user(stub, root)
    first = await stub.Login(pb.LoginRequest(username=user.username, password=PASSWORD))
    second = await stub.Login(pb.LoginRequest(username=user.username, password=PASSWORD))
    listed = await stub.ListSessions(
        pb.ListSessionsRequest(user_id=user.id, current_session_id=second.session_id)
    )
    assert len(listed.sessions) == 2 and [s.current for s in listed.sessions] == [True, False]
    other = listed.sessions[1].id
    await stub.RevokeSession(pb.RevokeSessionRequest(user_id=user.id, id=other))
    gone = pb.ResolvePrincipalRequest(session_id=first.session_id, claimed_user_id=user.id)
    assert (await rpc_error(stub.ResolvePrincipal(gone))).code() == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    stranger = await make_user(stub, root)
    theirs = pb.RevokeSessionRequest(user_id=stranger.id, id=listed.sessions[0].id)
    assert (await rpc_error(stub.RevokeSession(theirs))).code() == grpc.StatusCode.NOT_FOUND


# ---------------------------------------------------------------- options and audits


async def test_option_changes_are_audited_with_secrets_masked(stub: Stub, root: pb.User) -> None:
    await _set_option(stub, root, "SMTPToken", "super-secret-value")
    await _set_option(stub, root, "SystemName", "Audited Site")
    audit = await stub.ListOptionAudit(pb.ListOptionAuditRequest(key="SMTPToken"))
    latest = audit.entries[0]
    assert (latest.actor_id, latest.new_value) == (root.id, "***")
    assert "super-secret-value" not in str(audit)
    named = await stub.ListOptionAudit(pb.ListOptionAuditRequest(key="SystemName"))
    assert named.entries[0].new_value == "Audited Site" and named.entries[0].created_time > 0


async def test_snapshot_carries_options_for_the_relay(
    stub: Stub, root: pb.User, saved_options: None
) -> None:
    before = await stub.GetRoutingSnapshot(pb.GetRoutingSnapshotRequest())
    await _set_option(stub, root, "AutomaticDisableKeywords", " quota gone \n\nbanned ")
    snapshot = await stub.GetRoutingSnapshot(pb.GetRoutingSnapshotRequest())
    options = {o.key: o.value for o in snapshot.options}
    assert snapshot.version > before.version
    assert options["AutomaticDisableKeywords"] == "quota gone\nbanned"
    assert options["RetryTimes"] == "0" and "SMTPToken" not in options


# ---------------------------------------------------------------- channels


async def test_root_reveal_is_audited_and_admins_are_refused(
    stub: Stub, root: pb.User, infra: Infra
) -> None:
    channel = pb.Channel(
        type=1, name=unique("rv"), key="sk-reveal-one\nsk-reveal-two", models=["m"], groups=["x"]
    )
    saved = await stub.SaveChannel(pb.SaveChannelRequest(actor_id=root.id, channel=channel))
    second = saved.keys[1].id
    reply = await stub.RevealChannelKey(
        pb.RevealChannelKeyRequest(actor_id=root.id, channel_id=saved.id, key_id=second)
    )
    assert reply.key == "sk-reveal-two"
    admin = await make_user(stub, root, role=pb.ROLE_ADMIN)
    denied = pb.RevealChannelKeyRequest(actor_id=admin.id, channel_id=saved.id)
    assert (await rpc_error(stub.RevealChannelKey(denied))).code() == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    conn = await asyncpg.connect(infra.database_url)
    try:
        rows = await conn.fetch(
            "SELECT actor_id, key_id FROM accounts.channel_key_reveals WHERE channel_id = $1",
            saved.id,
        )
    finally:
        await conn.close()
    assert [(r["actor_id"], r["key_id"]) for r in rows] == [(root.id, second)]


# ---------------------------------------------------------------- inbox


async def test_inbox_reaches_chosen_users_only(stub: Stub, root: pb.User) -> None:
    alice, bob = await make_user(stub, root), await make_user(stub, root)
    message = pb.InboxMessage(title="Maintenance", content="**Tonight**", user_ids=[alice.id])
    saved = await stub.SaveMessage(pb.SaveMessageRequest(actor_id=root.id, message=message))
    assert list(saved.user_ids) == [alice.id]
    mine = await stub.ListUserMessages(pb.ListUserMessagesRequest(user_id=alice.id))
    assert [m.id for m in mine.messages] == [saved.id] and mine.unread == 1
    theirs = await stub.ListUserMessages(pb.ListUserMessagesRequest(user_id=bob.id))
    assert saved.id not in [m.id for m in theirs.messages]
    hidden = pb.MarkMessageReadRequest(user_id=bob.id, id=saved.id)
    assert (await rpc_error(stub.MarkMessageRead(hidden))).code() == grpc.StatusCode.NOT_FOUND
    read = await stub.MarkMessageRead(pb.MarkMessageReadRequest(user_id=alice.id, id=saved.id))
    assert read.unread == 0
    not_admin = pb.SaveMessageRequest(actor_id=alice.id, message=message)
    assert (await rpc_error(stub.SaveMessage(not_admin))).code() == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    empty = pb.SaveMessageRequest(actor_id=root.id, message=pb.InboxMessage(title="t", content="c"))
    assert (await rpc_error(stub.SaveMessage(empty))).code() == grpc.StatusCode.INVALID_ARGUMENT
