"""Inbox: admins write Markdown messages to all or chosen users; users read them."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route
from veloera.accounts.v1 import accounts_pb2

from services.web.api import ROLE_ADMIN, ROLE_COMMON, ApiError, Call, endpoint
from services.web.convert import paged


def message_item(message: accounts_pb2.InboxMessage, *, admin: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": message.id,
        "title": message.title,
        "content": message.content,
        "format": message.format,
        "created_at": message.created_time,
        "updated_at": message.updated_time,
    }
    if admin:
        item.update(
            to_all=message.to_all, user_ids=list(message.user_ids), created_by=message.created_by
        )
    else:
        item.update(read=message.read_time > 0, read_at=message.read_time)
    return item


def _message_from(call: Call, body: dict[str, Any]) -> accounts_pb2.InboxMessage:
    raw_ids = body.get("user_ids") or []
    if not isinstance(raw_ids, list):
        raise ApiError("user_ids must be a list of user ids")
    return accounts_pb2.InboxMessage(
        title=str(body.get("title") or ""),
        content=str(body.get("content") or ""),
        format=str(body.get("format") or "markdown"),
        to_all=bool(body.get("to_all")),
        user_ids=[call.body_int({"id": value}, "id") for value in raw_ids],
    )


async def _save(call: Call, message: accounts_pb2.InboxMessage) -> dict[str, Any]:
    saved = await call.deps.accounts.SaveMessage(
        accounts_pb2.SaveMessageRequest(actor_id=call.user_id, message=message),
        timeout=call.deps.timeout,
    )
    return message_item(saved, admin=True)


@endpoint(ROLE_ADMIN)
async def create_message(call: Call) -> dict[str, Any]:
    return await _save(call, _message_from(call, await call.json()))


@endpoint(ROLE_ADMIN)
async def update_message(call: Call) -> dict[str, Any]:
    message = _message_from(call, await call.json())
    message.id = call.path_int("id")
    return await _save(call, message)


@endpoint(ROLE_ADMIN)
async def delete_message(call: Call) -> None:
    await call.deps.accounts.DeleteMessage(
        accounts_pb2.DeleteMessageRequest(actor_id=call.user_id, id=call.path_int("id")),
        timeout=call.deps.timeout,
    )


@endpoint(ROLE_ADMIN)
async def list_messages(call: Call) -> dict[str, Any]:
    page, size = call.page()
    reply = await call.deps.accounts.ListMessages(
        accounts_pb2.ListMessagesRequest(
            actor_id=call.user_id,
            page=page,
            page_size=size,
            keyword=call.request.query_params.get("keyword", ""),
        ),
        timeout=call.deps.timeout,
    )
    items = [message_item(m, admin=True) for m in reply.messages]
    return paged(items, reply.total, page, size)


@endpoint(ROLE_ADMIN)
async def get_message(call: Call) -> dict[str, Any]:
    message = await call.deps.accounts.GetMessage(
        accounts_pb2.GetMessageRequest(id=call.path_int("id")), timeout=call.deps.timeout
    )
    return message_item(message, admin=True)


@endpoint(ROLE_COMMON)
async def my_messages(call: Call) -> dict[str, Any]:
    page, size = call.page()
    unread_only = call.request.query_params.get("unread", "") in {"1", "true"}
    reply = await call.deps.accounts.ListUserMessages(
        accounts_pb2.ListUserMessagesRequest(
            user_id=call.user_id, page=page, page_size=size, unread_only=unread_only
        ),
        timeout=call.deps.timeout,
    )
    result = paged([message_item(m, admin=False) for m in reply.messages], reply.total, page, size)
    result["unread"] = reply.unread
    return result


@endpoint(ROLE_COMMON)
async def unread_count(call: Call) -> int:
    reply = await call.deps.accounts.ListUserMessages(
        accounts_pb2.ListUserMessagesRequest(user_id=call.user_id, page=1, page_size=1),
        timeout=call.deps.timeout,
    )
    return reply.unread


async def _mark(call: Call, message_id: int) -> dict[str, int]:
    reply = await call.deps.accounts.MarkMessageRead(
        accounts_pb2.MarkMessageReadRequest(user_id=call.user_id, id=message_id),
        timeout=call.deps.timeout,
    )
    return {"unread": reply.unread}


@endpoint(ROLE_COMMON)
async def mark_read(call: Call) -> dict[str, int]:
    return await _mark(call, call.path_int("id"))


@endpoint(ROLE_COMMON)
async def mark_all_read(call: Call) -> dict[str, int]:
    return await _mark(call, 0)


ROUTES = [
    Route("/api/admin/messages/", list_messages, methods=["GET"]),
    Route("/api/admin/messages/search", list_messages, methods=["GET"]),
    Route("/api/admin/messages/", create_message, methods=["POST"]),
    Route("/api/admin/messages/{id:int}", get_message, methods=["GET"]),
    Route("/api/admin/messages/{id:int}", update_message, methods=["PUT"]),
    Route("/api/admin/messages/{id:int}", delete_message, methods=["DELETE"]),
    Route("/api/user/messages/", my_messages, methods=["GET"]),
    Route("/api/user/messages/unread_count", unread_count, methods=["GET"]),
    Route("/api/user/messages/read_all", mark_all_read, methods=["PUT", "POST"]),
    Route("/api/user/messages/{id:int}/read", mark_read, methods=["PUT", "POST"]),
]
