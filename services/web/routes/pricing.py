"""The pricing page (`GET /api/pricing`): every model a group can use with its prices."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from starlette.routing import Route
from veloera.accounts.v1 import accounts_pb2
from veloera.billing.v1 import billing_pb2

from services.web.api import Call, JSONResponse, endpoint

PAGE_SIZE = 100
MAX_PAGES = 100


async def enabled_models(call: Call) -> dict[str, set[str]]:
    """Model -> groups served by at least one enabled channel (keys stay masked)."""
    deps = call.deps
    groups_of: dict[str, set[str]] = defaultdict(set)
    for page in range(1, MAX_PAGES + 1):
        reply = await deps.accounts.ListChannels(
            accounts_pb2.ListChannelsRequest(
                page=page,
                page_size=PAGE_SIZE,
                statuses=[accounts_pb2.CHANNEL_STATUS_ENABLED],
            ),
            timeout=deps.timeout,
        )
        for channel in reply.channels:
            for model in channel.models:
                groups_of[model].update(channel.groups)
        if len(reply.channels) < PAGE_SIZE or page * PAGE_SIZE >= reply.total:
            break
    return groups_of


@endpoint()
async def pricing(call: Call) -> JSONResponse:
    deps = call.deps
    groups_of = await enabled_models(call)
    prices = await deps.billing.ListModelPrices(
        billing_pb2.ListModelPricesRequest(models=sorted(groups_of)), timeout=deps.timeout
    )
    data: list[dict[str, Any]] = [
        {
            "model_name": item.model_name,
            "quota_type": 1 if item.per_call else 0,
            "model_ratio": item.model_ratio,
            "model_price": item.model_price,
            "completion_ratio": item.completion_ratio,
            "cache_ratio": item.cache_ratio,
            "input_price_per_million": item.input_per_million,
            "output_price_per_million": item.output_per_million,
            "priced": item.priced,
            "enable_groups": sorted(groups_of[item.model_name]),
            "owner_by": "",
        }
        for item in prices.items
    ]
    return JSONResponse(
        {
            "success": True,
            "message": "",
            "data": data,
            "group_ratio": dict(prices.group_ratio),
            "usable_group": dict(prices.usable_groups),
        }
    )


ROUTES = [Route("/api/pricing", pricing, methods=["GET"])]
