"""Use cases for the inbox: admins write Markdown messages; users list them and mark them read."""

from __future__ import annotations

from veloera.accounts.v1 import accounts_pb2 as pb

from services.accounts import inbox_repo, roles
from services.accounts.deps import Deps, load_actor, now, paging
from services.accounts.records import MessageRecord
from services.shared.errors import InvalidArgument, NotFound

MAX_TITLE = 200
MAX_CONTENT = 100_000
FORMATS = frozenset({"markdown", "text", "html"})


def _message(row: MessageRecord, *, user_ids: list[int] | None = None) -> pb.InboxMessage:
    return pb.InboxMessage(
        id=row.id,
        title=row.title,
        content=row.content,
        format=row.format,
        to_all=row.to_all,
        user_ids=user_ids or [],
        created_by=row.created_by,
        created_time=row.created_at,
        updated_time=row.updated_at,
        read_time=row.read_at,
    )


def _checked(message: pb.InboxMessage) -> tuple[str, str, str]:
    title, content = message.title.strip(), message.content
    fmt = message.format.strip() or "markdown"
    if not 1 <= len(title) <= MAX_TITLE:
        raise InvalidArgument(f"title must be 1..{MAX_TITLE} characters")
    if not content.strip() or len(content) > MAX_CONTENT:
        raise InvalidArgument(f"content must be 1..{MAX_CONTENT} characters")
    if fmt not in FORMATS:
        raise InvalidArgument("format must be markdown, text or html")
    if not message.to_all and not message.user_ids:
        raise InvalidArgument("choose the recipients (user_ids) or send to all users")
    return title, content, fmt


async def save_message(deps: Deps, request: pb.SaveMessageRequest) -> pb.InboxMessage:
    incoming = request.message
    title, content, fmt = _checked(incoming)
    user_ids = [] if incoming.to_all else sorted(set(incoming.user_ids))
    async with deps.pool.acquire() as conn, conn.transaction():
        actor = await load_actor(conn, request.actor_id)
        roles.require_admin(actor.role)
        if incoming.id:
            row = await inbox_repo.update_message(
                conn, message_id=incoming.id, title=title, content=content, fmt=fmt,
                to_all=incoming.to_all, now=now(),
            )  # fmt: skip
            if row is None:
                raise NotFound("message not found")
        else:
            row = await inbox_repo.insert_message(
                conn, title=title, content=content, fmt=fmt, to_all=incoming.to_all,
                created_by=actor.id, now=now(),
            )  # fmt: skip
        await inbox_repo.set_recipients(conn, message_id=row.id, user_ids=user_ids)
        stored = await inbox_repo.recipients(conn, message_ids=[row.id])
    if user_ids and not stored.get(row.id):
        raise InvalidArgument("none of the chosen users exists")
    return _message(row, user_ids=stored.get(row.id, []))


async def delete_message(deps: Deps, request: pb.DeleteMessageRequest) -> pb.DeleteMessageResponse:
    async with deps.pool.acquire() as conn, conn.transaction():
        actor = await load_actor(conn, request.actor_id)
        roles.require_admin(actor.role)
        if not await inbox_repo.delete_message(conn, message_id=request.id):
            raise NotFound("message not found")
    return pb.DeleteMessageResponse()


async def list_messages(deps: Deps, request: pb.ListMessagesRequest) -> pb.ListMessagesResponse:
    limit, offset = paging(request.page, request.page_size)
    async with deps.pool.acquire() as conn:
        actor = await load_actor(conn, request.actor_id)
        roles.require_admin(actor.role)
        rows, total = await inbox_repo.list_all(
            conn, keyword=request.keyword.strip(), limit=limit, offset=offset
        )
        users = await inbox_repo.recipients(conn, message_ids=[row.id for row in rows])
    messages = [_message(row, user_ids=users.get(row.id, [])) for row in rows]
    return pb.ListMessagesResponse(messages=messages, total=total)


async def get_message(deps: Deps, request: pb.GetMessageRequest) -> pb.InboxMessage:
    async with deps.pool.acquire() as conn:
        row = await inbox_repo.get_message(conn, message_id=request.id)
        if row is None:
            raise NotFound("message not found")
        users = await inbox_repo.recipients(conn, message_ids=[row.id])
    return _message(row, user_ids=users.get(row.id, []))


async def list_user_messages(
    deps: Deps, request: pb.ListUserMessagesRequest
) -> pb.ListMessagesResponse:
    limit, offset = paging(request.page, request.page_size)
    async with deps.pool.acquire() as conn:
        rows, total = await inbox_repo.list_for_user(
            conn, user_id=request.user_id, unread_only=request.unread_only,
            limit=limit, offset=offset,
        )  # fmt: skip
        unread = await inbox_repo.unread_count(conn, user_id=request.user_id)
    messages = [_message(row) for row in rows]
    return pb.ListMessagesResponse(messages=messages, total=total, unread=unread)


async def mark_message_read(
    deps: Deps, request: pb.MarkMessageReadRequest
) -> pb.MarkMessageReadResponse:
    async with deps.pool.acquire() as conn, conn.transaction():
        if request.id and not await inbox_repo.is_visible(
            conn, user_id=request.user_id, message_id=request.id
        ):
            raise NotFound("message not found")
        await inbox_repo.mark_read(conn, user_id=request.user_id, message_id=request.id, now=now())
        unread = await inbox_repo.unread_count(conn, user_id=request.user_id)
    return pb.MarkMessageReadResponse(unread=unread)
