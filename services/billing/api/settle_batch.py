"""A SettleBatch message (from the call or the SETTLEMENTS stream) applied through the settle
use case: many settlements and releases, one result per item; an invalid item answers its own
error and is never applied."""

from __future__ import annotations

from veloera.billing.v1 import billing_pb2

from services.billing.api import proto
from services.billing.context import Billing
from services.billing.metering import batch, settle
from services.billing.metering.settlement import SettleInput
from services.shared.errors import DomainError, InvalidArgument

MAX_BATCH = 1000


def item_error(exc: DomainError) -> billing_pb2.BatchItemError:
    return billing_pb2.BatchItemError(
        grpc_code=exc.status.value[0], code=exc.code, message=exc.message
    )


def settle_response(request_id: str, outcome: batch.SettleOutcome) -> billing_pb2.SettleBatchResult:
    if outcome.result is None:
        assert outcome.error is not None
        return billing_pb2.SettleBatchResult(error=item_error(outcome.error))
    return billing_pb2.SettleBatchResult(settled=proto.settle_pb(request_id, outcome.result))


def release_response(
    request_id: str, outcome: batch.ReleaseOutcome
) -> billing_pb2.ReleaseBatchResult:
    if outcome.result is None:
        assert outcome.error is not None
        return billing_pb2.ReleaseBatchResult(error=item_error(outcome.error))
    return billing_pb2.ReleaseBatchResult(released=proto.release_pb(request_id, outcome.result))


async def apply_batch(
    billing: Billing, request: billing_pb2.SettleBatchRequest
) -> billing_pb2.SettleBatchResponse:
    """A SettleBatch, from the call or from the SETTLEMENTS stream (a deferred batch)."""
    if len(request.settlements) + len(request.releases) > MAX_BATCH:
        raise InvalidArgument(f"at most {MAX_BATCH} items per batch")
    # Invalid items (bad usage kind, bad other_json) answer their own error, never applied.
    specs: list[SettleInput] = []
    invalid: dict[int, DomainError] = {}
    for index, item in enumerate(request.settlements):
        try:
            specs.append(proto.settle_input(item))
        except DomainError as exc:
            invalid[index] = exc
    releases = [batch.Released(request_id=r.request_id, reason=r.reason) for r in request.releases]
    settled, released = await settle.settle_batch(
        billing, specs, releases, list(request.return_leases)
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
