"""OpenAI-style billing endpoints for third-party tools (upstream `router/dashboard.go`):
`GET /dashboard/billing/subscription` and `/dashboard/billing/usage` (also under `/v1/`),
answered from the key's token budget in billing, in USD (quota / QuotaPerUnit)."""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from veloera.billing.v1 import billing_pb2, billing_pb2_grpc

from services.relay.client import authorise, count, read_key
from services.relay.errors import REQUEST_ID_HEADER, RelayError, error_response
from services.relay.ids import new_request_id
from services.relay.state import RelayContext

logger = logging.getLogger(__name__)

BILLING_TIMEOUT = 5.0
UNLIMITED_USD = 100_000_000.0  # what upstream reports for an unlimited key
_QPU_TTL = 30.0


class DashboardRoutes:
    def __init__(self, ctx: RelayContext) -> None:
        self.ctx = ctx
        self._quota_per_unit = 500_000
        self._qpu_at = 0.0

    def _stub(self) -> billing_pb2_grpc.BillingServiceAsyncStub:
        return billing_pb2_grpc.BillingServiceStub(self.ctx.billing_channel)

    async def _qpu(self) -> int:
        if time.monotonic() - self._qpu_at > _QPU_TTL:
            reply = await self._stub().GetPricingOptions(
                billing_pb2.GetPricingOptionsRequest(), timeout=BILLING_TIMEOUT
            )
            for option in reply.options:
                if option.key == "QuotaPerUnit":
                    self._quota_per_unit = max(int(option.value), 1)
            self._qpu_at = time.monotonic()
        return self._quota_per_unit

    async def _budget(self, request: Request) -> tuple[Any, billing_pb2.TokenBudget, int]:
        entry = await authorise(self.ctx, request, read_key(request), None)
        reply = await self._stub().GetTokenBudgets(
            billing_pb2.GetTokenBudgetsRequest(token_ids=[entry.token.id]), timeout=BILLING_TIMEOUT
        )
        budget = reply.budgets[0] if reply.budgets else billing_pb2.TokenBudget()
        return entry, budget, await self._qpu()

    async def subscription(self, request: Request) -> Response:
        async def answer() -> dict[str, Any]:
            entry, budget, qpu = await self._budget(request)
            unlimited = budget.unlimited or entry.token.unlimited_quota
            amount = UNLIMITED_USD if unlimited else (budget.remain_quota + budget.used_quota) / qpu
            expires = entry.token.expired_time
            return {
                "object": "billing_subscription",
                "has_payment_method": True,
                "soft_limit_usd": amount,
                "hard_limit_usd": amount,
                "system_hard_limit_usd": amount,
                "access_until": expires if expires > 0 else 0,
            }

        return await self._run("billing_subscription", answer)

    async def usage(self, request: Request) -> Response:
        async def answer() -> dict[str, Any]:
            _, budget, qpu = await self._budget(request)
            # total_usage is in cents, as OpenAI's legacy endpoint reports it.
            return {"object": "list", "total_usage": budget.used_quota / qpu * 100}

        return await self._run("billing_usage", answer)

    async def _run(self, route: str, answer: Any) -> Response:
        request_id = new_request_id()
        try:
            body = await answer()
            response = Response(
                orjson.dumps(body),
                media_type="application/json",
                headers={REQUEST_ID_HEADER: request_id},
            )
        except RelayError as err:
            response = error_response(err, request_id)
        except grpc.aio.AioRpcError as exc:
            logger.warning("billing unavailable for %s: %s", route, exc.code().name)
            response = error_response(
                RelayError(503, "billing service unavailable", code="billing_unavailable"),
                request_id,
            )
        count(route, response.status_code)
        return response


def dashboard_routes(ctx: RelayContext) -> list[BaseRoute]:
    routes = DashboardRoutes(ctx)
    return [
        Route(f"{prefix}/dashboard/billing/{name}", handler, methods=["GET"])
        for prefix in ("", "/v1")
        for name, handler in (("subscription", routes.subscription), ("usage", routes.usage))
    ]
