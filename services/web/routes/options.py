"""Runtime options for root: pricing keys live in billing, every other key in accounts."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.routing import Route
from veloera.accounts.v1 import accounts_pb2
from veloera.billing.v1 import billing_pb2

from services.shared.options import PRICING_OPTION_KEYS, SHARED_OPTION_KEYS
from services.web.api import ROLE_ROOT, ApiError, Call, endpoint
from services.web.convert import option_text, paged
from services.web.options_cache import forget_options

_HIDDEN_SUFFIXES = ("Token", "Secret", "Key", "_secret", "_token", "_key")


@endpoint(ROLE_ROOT)
async def list_options(call: Call) -> list[dict[str, str]]:
    deps = call.deps
    accounts, pricing = await asyncio.gather(
        deps.accounts.ListOptions(accounts_pb2.ListOptionsRequest(), timeout=deps.timeout),
        deps.billing.GetPricingOptions(
            billing_pb2.GetPricingOptionsRequest(), timeout=deps.timeout
        ),
    )
    merged = {o.key: o.value for o in accounts.options if o.key not in PRICING_OPTION_KEYS}
    merged.update({o.key: o.value for o in pricing.options})
    return [
        {"key": key, "value": value}
        for key, value in sorted(merged.items())
        if not key.endswith(_HIDDEN_SUFFIXES)
    ]


@endpoint(ROLE_ROOT)
async def update_option(call: Call) -> None:
    body = await call.json()
    key = str(body.get("key") or "").strip()
    if not key:
        raise ApiError("key is required")
    value = option_text(body.get("value"))
    deps = call.deps
    if key in PRICING_OPTION_KEYS:
        await deps.billing.UpdatePricingOption(
            billing_pb2.UpdatePricingOptionRequest(actor_id=call.user_id, key=key, value=value),
            timeout=deps.timeout,
        )
    if key not in PRICING_OPTION_KEYS or key in SHARED_OPTION_KEYS:
        await deps.accounts.UpdateOption(
            accounts_pb2.UpdateOptionRequest(actor_id=call.user_id, key=key, value=value),
            timeout=deps.timeout,
        )
    forget_options(call.request)


@endpoint(ROLE_ROOT)
async def option_audit(call: Call) -> dict[str, Any]:
    page, size = call.page()
    reply = await call.deps.accounts.ListOptionAudit(
        accounts_pb2.ListOptionAuditRequest(
            page=page, page_size=size, key=call.request.query_params.get("key", "")
        ),
        timeout=call.deps.timeout,
    )
    items = [
        {
            "id": e.id,
            "actor_id": e.actor_id,
            "key": e.key,
            "old_value": e.old_value,
            "new_value": e.new_value,
            "created_at": e.created_time,
        }
        for e in reply.entries
    ]
    return paged(items, reply.total, page, size)


ROUTES = [
    Route("/api/option/audit", option_audit, methods=["GET"]),
    Route("/api/option/", list_options, methods=["GET"]),
    Route("/api/option/", update_option, methods=["PUT"]),
]
