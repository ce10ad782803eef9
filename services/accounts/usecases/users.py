"""Use cases for reading and administering users."""

from __future__ import annotations

from typing import Any

from veloera.accounts.v1 import accounts_pb2 as pb

from services.accounts import convert, events, roles, user_rules, user_settings, users_repo
from services.accounts.deps import Deps, load_actor, now, paging
from services.accounts.passwords import hash_password, verify_password
from services.accounts.records import UserRecord
from services.accounts.registration import check_registration_open
from services.accounts.types import Conn
from services.shared.errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied

_AFF_CODE_ATTEMPTS = 10


async def get_user(deps: Deps, request: pb.GetUserRequest) -> pb.User:
    async with deps.pool.acquire() as conn:
        row = await users_repo.get_user(conn, user_id=request.id)
    if row is None:
        raise NotFound("user not found")
    return convert.user(row)


async def list_users(deps: Deps, request: pb.ListUsersRequest) -> pb.ListUsersResponse:
    limit, offset = paging(request.page, request.page_size)
    async with deps.pool.acquire() as conn:
        rows, total = await users_repo.list_users(
            conn, keyword=request.keyword.strip(), group=request.group.strip(),
            role=int(request.role), status=int(request.status), limit=limit, offset=offset,
        )  # fmt: skip
    return pb.ListUsersResponse(users=[convert.user(row) for row in rows], total=total)


async def create_user(deps: Deps, request: pb.CreateUserRequest) -> pb.User:
    username = user_rules.check_username(request.username)
    display_name = user_rules.check_display_name(request.display_name or username)
    email = user_rules.check_email(request.email)
    role = request.role or roles.COMMON
    password_hash = await hash_password(user_rules.check_password(request.password))
    async with deps.pool.acquire() as conn, conn.transaction():
        group = "default"
        if request.actor_id:
            actor = await load_actor(conn, request.actor_id)
            roles.require_admin(actor.role)
            roles.check_new_role(actor.role, role)
            group = user_rules.check_group(request.group) if request.group else group
        elif role != roles.COMMON:
            raise PermissionDenied("self-registration creates common users only")
        else:
            await check_registration_open(conn)
        row = await insert_new_user(
            conn, username=username, password_hash=password_hash, display_name=display_name,
            email=email, role=role, group=group, aff_code=request.aff_code,
        )  # fmt: skip
    await deps.events.changed(events.USER, ids=[row.id])
    return convert.user(row)


async def update_user(deps: Deps, request: pb.UpdateUserRequest) -> pb.User:
    changes = await _requested_changes(request, allow_private=deps.webhook_private_addresses)
    async with deps.pool.acquire() as conn, conn.transaction():
        actor = await load_actor(conn, request.actor_id)
        target = await users_repo.get_user(conn, user_id=request.id, for_update=True)
        if target is None:
            raise NotFound("user not found")
        if "password_hash" in changes and actor.id == target.id:
            await _check_old_password(target.password_hash, request.old_password)
        if actor.id != target.id or "group" in changes:
            roles.require_admin(actor.role)
            if actor.id != target.id:
                roles.require_outranks(actor.role, target.role)
        await _check_unique(
            conn, username=changes.get("username", ""), email=changes.get("email", ""),
            user_id=target.id,
        )  # fmt: skip
        row = await users_repo.update_user(conn, user_id=target.id, changes=changes)
        if "password_hash" in changes:
            await users_repo.revoke_credentials(
                conn, user_id=target.id, keep_session_hash=_kept(deps, request, actor, target)
            )
    assert row is not None
    await deps.events.changed(events.USER, ids=[row.id])
    return convert.user(row)


def _kept(deps: Deps, request: pb.UpdateUserRequest, actor: UserRecord, target: UserRecord) -> str:
    """The session a user changes its own password from stays; an admin's change (or one
    without a session) revokes them all."""
    if not request.keep_session_id or actor.id != target.id:
        return ""
    return deps.box.lookup_hash(request.keep_session_id)


async def manage_user(deps: Deps, request: pb.ManageUserRequest) -> pb.User:
    async with deps.pool.acquire() as conn, conn.transaction():
        actor = await load_actor(conn, request.actor_id)
        target = await users_repo.get_user(conn, user_id=request.id, for_update=True)
        if target is None:
            raise NotFound("user not found")
        change = roles.plan_manage(request.action, actor_role=actor.role, target_role=target.role)
        if change.delete:
            await users_repo.soft_delete_user(conn, user_id=target.id, now=now())
            result = convert.user(target)
            result.deleted = True
        else:
            updates: dict[str, Any] = {}
            if change.role is not None:
                updates["role"] = change.role
            if change.status is not None:
                updates["status"] = change.status
            row = await users_repo.update_user(conn, user_id=target.id, changes=updates)
            assert row is not None
            result = convert.user(row)
    await deps.events.changed(events.USER, ids=[result.id])
    return result


async def delete_user(deps: Deps, request: pb.DeleteUserRequest) -> pb.DeleteUserResponse:
    async with deps.pool.acquire() as conn, conn.transaction():
        actor = await load_actor(conn, request.actor_id)
        target = await users_repo.get_user(conn, user_id=request.id, for_update=True)
        if target is None:
            raise NotFound("user not found")
        if target.role == roles.ROOT:
            raise FailedPrecondition("the root user cannot be deleted")
        if actor.id != target.id:
            roles.require_admin(actor.role)
            roles.require_outranks(actor.role, target.role)
        if request.hard and actor.id != target.id:
            await users_repo.hard_delete_user(conn, user_id=target.id)
        else:
            await users_repo.soft_delete_user(conn, user_id=target.id, now=now())
    await deps.events.changed(events.USER, ids=[request.id])
    return pb.DeleteUserResponse()


async def _requested_changes(
    request: pb.UpdateUserRequest, *, allow_private: bool
) -> dict[str, Any]:
    """The columns an update asks to set, validated (proto3 optional presence)."""
    changes: dict[str, Any] = {}
    if request.HasField("username"):
        changes["username"] = user_rules.check_username(request.username)
    if request.HasField("display_name"):
        changes["display_name"] = user_rules.check_display_name(request.display_name)
    if request.HasField("group"):
        changes["group"] = user_rules.check_group(request.group)
    if request.HasField("email"):
        changes["email"] = user_rules.check_email(request.email)
    if request.HasField("setting"):
        changes["setting"] = user_settings.check_setting(
            request.setting, allow_private=allow_private
        )
    if request.HasField("password") and request.password:
        changes["password_hash"] = await hash_password(user_rules.check_password(request.password))
    return changes


async def _check_old_password(password_hash: str, old_password: str) -> None:
    if not old_password or not await verify_password(password_hash, old_password):
        raise PermissionDenied("the current password is wrong", code="wrong_password")


async def insert_new_user(
    conn: Conn,
    *,
    username: str,
    password_hash: str,
    display_name: str,
    email: str,
    role: int,
    group: str,
    aff_code: str,
) -> UserRecord:
    """Insert a user after the uniqueness checks, crediting the inviter named by `aff_code`
    (an unknown code is ignored, as upstream does)."""
    await _check_unique(conn, username=username, email=email, user_id=0)
    inviter_id = 0
    if aff_code.strip():
        inviter_id = await users_repo.inviter_by_aff_code(conn, aff_code=aff_code.strip())
        if inviter_id:
            await users_repo.bump_aff_count(conn, user_id=inviter_id)
    return await users_repo.insert_user(
        conn, username=username, password_hash=password_hash, display_name=display_name,
        email=email, role=role, group=group, aff_code=await _free_aff_code(conn),
        inviter_id=inviter_id, now=now(),
    )  # fmt: skip


async def _check_unique(conn: Conn, *, username: str, email: str, user_id: int) -> None:
    if username and await users_repo.username_taken(conn, username=username, except_id=user_id):
        raise AlreadyExists("username already exists")
    if email and await users_repo.email_taken(conn, email=email, except_id=user_id):
        raise AlreadyExists("email already in use")


async def _free_aff_code(conn: Conn) -> str:
    for _ in range(_AFF_CODE_ATTEMPTS):
        code = user_rules.new_aff_code()
        if not await users_repo.aff_code_taken(conn, aff_code=code):
            return code
    raise FailedPrecondition("cannot allocate an invite code, try again")
