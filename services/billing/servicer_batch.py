"""The SettleBatch RPC (many settlements and releases per call, one result per item) and the
lease RPCs."""

from __future__ import annotations

import grpc
from veloera.billing.v1 import billing_pb2

from services.billing import batch, batch_core, convert, lease_core
from services.billing.core import BillingCore
from services.billing.settlement import SettleInput
from services.shared.errors import DomainError, InvalidArgument

Context = grpc.aio.ServicerContext[object, object]
MAX_BATCH = 1000


def item_error(exc: DomainError) -> billing_pb2.BatchItemError:
    return billing_pb2.BatchItemError(
        grpc_code=exc.status.value[0], code=exc.code, message=exc.message
    )


def settle_response(request_id: str, outcome: batch.SettleOutcome) -> billing_pb2.SettleBatchResult:
    if outcome.result is None:
        assert outcome.error is not None
        return billing_pb2.SettleBatchResult(error=item_error(outcome.error))
    result = outcome.result
    return billing_pb2.SettleBatchResult(
        settled=billing_pb2.SettleResponse(
            request_id=request_id,
            charged=result.charged,
            refunded=result.refunded,
            already_settled=result.already_settled,
            log_id=result.log_id,
        )
    )


def release_response(
    request_id: str, outcome: batch.ReleaseOutcome
) -> billing_pb2.ReleaseBatchResult:
    if outcome.result is None:
        assert outcome.error is not None
        return billing_pb2.ReleaseBatchResult(error=item_error(outcome.error))
    return billing_pb2.ReleaseBatchResult(
        released=billing_pb2.ReleaseResponse(
            request_id=request_id,
            released=outcome.result.released,
            already_released=outcome.result.already_released,
        )
    )


async def apply_batch(
    core: BillingCore, request: billing_pb2.SettleBatchRequest
) -> billing_pb2.SettleBatchResponse:
    """A SettleBatch, from the call or from the SETTLEMENTS stream (a deferred batch)."""
    if len(request.settlements) + len(request.releases) > MAX_BATCH:
        raise InvalidArgument(f"at most {MAX_BATCH} items per batch")
    # Invalid items (bad usage kind, bad other_json) answer their own error, never applied.
    specs: list[SettleInput] = []
    invalid: dict[int, DomainError] = {}
    for index, item in enumerate(request.settlements):
        try:
            specs.append(convert.settle_input(item))
        except DomainError as exc:
            invalid[index] = exc
    releases = [batch.Released(request_id=r.request_id, reason=r.reason) for r in request.releases]
    settled, released = await batch_core.settle_batch(
        core, specs, releases, list(request.return_leases)
    )
    applied = iter(settled)
    settle_results: list[billing_pb2.SettleBatchResult] = []
    for index, item in enumerate(request.settlements):
        error = invalid.get(index)
        if error is not None:
            settle_results.append(billing_pb2.SettleBatchResult(error=item_error(error)))
        else:
            settle_results.append(settle_response(item.request_id, next(applied)))
    return billing_pb2.SettleBatchResponse(
        settlements=settle_results,
        releases=[
            release_response(r.request_id, outcome)
            for r, outcome in zip(request.releases, released, strict=True)
        ],
    )


class BatchRpcs:
    """Mixed into BillingServicer."""

    _core: BillingCore

    async def SettleBatch(
        self, request: billing_pb2.SettleBatchRequest, context: Context
    ) -> billing_pb2.SettleBatchResponse:
        return await apply_batch(self._core, request)

    async def AcquireLease(
        self, request: billing_pb2.AcquireLeaseRequest, context: Context
    ) -> billing_pb2.Lease:
        if request.user_id <= 0 or not request.holder:
            raise InvalidArgument("user_id and holder are required")
        granted = await lease_core.acquire(
            self._core,
            lease_core.LeaseCall(
                holder=request.holder,
                user_id=request.user_id,
                token_id=request.token_id,
                model=request.model,
                group=request.group,
                requested_model=request.requested_model,
                upstream_model=request.upstream_model,
                prompt_tokens=request.prompt_tokens,
                max_tokens=request.max_tokens,
                requests=request.requests,
                ttl_seconds=request.ttl_seconds,
                hold_seconds=request.hold_seconds,
                trim_lease_id=request.trim.lease_id,
                trim_amount=request.trim.amount,
            ),
        )
        if granted.per_request or granted.price is None or granted.expires_at is None:
            return billing_pb2.Lease(per_request=True)
        return billing_pb2.Lease(
            lease_id=granted.lease_id,
            granted=granted.granted,
            expires_at_ms=int(granted.expires_at.timestamp() * 1000),
            price=convert.price_pb(granted.price),
            output_limit=granted.output_limit,
            first_hold=granted.first_hold,
        )

    async def ReturnLease(
        self, request: billing_pb2.ReturnLeaseRequest, context: Context
    ) -> billing_pb2.ReturnLeaseResponse:
        returned, already = await lease_core.give_back(self._core, request.lease_id)
        return billing_pb2.ReturnLeaseResponse(returned=returned, already_returned=already)
