"""The settle use cases: SettleBatch (plain and leased settlements in one set-based
transaction, the rest item by item, then releases and lease returns), a single Settle (a batch
of one: the same money path) and Release."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from services.billing.context import Billing
from services.billing.metering import accounting, batch, events, leases, leasing, settlement
from services.billing.metering.accounting import ReleaseResult
from services.billing.metering.settlement import SettleInput, SettleResult
from services.billing.metrics import RELEASES
from services.billing.pricing.table import PricingTable
from services.billing.store.holds import Hold
from services.shared.errors import DomainError
from services.shared.pricing import PriceSnapshot

logger = logging.getLogger(__name__)

_RETRY_ONE_BY_ONE = (DomainError, asyncpg.PostgresError, leases.ConcurrentSettlement)


async def settle_batch(
    billing: Billing,
    settlements: list[SettleInput],
    releases: list[batch.Released],
    returns: list[str] | None = None,
) -> tuple[list[batch.SettleOutcome], list[batch.ReleaseOutcome]]:
    """Apply the plain settlements in one transaction, the rest (unknown, repeated or no longer
    open holds) one by one after it; if the batch transaction fails as a whole (a database
    error, a deadlock, a concurrent duplicate), every item goes in a transaction of its own.
    Releases and lease returns come last. Idempotent per request id."""
    outcomes: dict[int, batch.SettleOutcome] = {}
    leftovers: list[int] = []
    if settlements:
        try:
            outcomes, leftovers = await _apply(billing, settlements)
        except _RETRY_ONE_BY_ONE:
            # One by one; for a single item this is one more try, which also answers an item
            # the other path (SettleBatch or the JetStream copy) settled at the same moment.
            if len(settlements) > 1:
                logger.warning("settle batch of %d failed; applying one by one", len(settlements))
            outcomes, leftovers = await _apply_each(billing, settlements)
    if leftovers:
        answers = await _answer(billing, [settlements[i].request_id for i in leftovers])
        for index in leftovers:
            answer = answers[settlements[index].request_id]
            outcomes[index] = (
                batch.SettleOutcome(error=answer)
                if isinstance(answer, DomainError)
                else batch.SettleOutcome(result=answer)
            )
    released: list[batch.ReleaseOutcome] = []
    for item in releases:
        try:
            result = await release(billing, request_id=item.request_id, reason=item.reason)
            released.append(batch.ReleaseOutcome(result=result))
        except DomainError as exc:
            released.append(batch.ReleaseOutcome(error=exc))
    for lease_id in returns or []:
        try:
            await leasing.give_back(billing, lease_id)
        except DomainError as exc:
            logger.warning("lease %s not returned: %s", lease_id, exc.message)
    return [outcomes[i] for i in range(len(settlements))], released


async def settle_one(billing: Billing, spec: SettleInput) -> SettleResult:
    """One settlement: a batch of one (the same money path as SettleBatch)."""
    [outcome], _ = await settle_batch(billing, [spec], [])
    if outcome.error is not None:
        raise outcome.error
    assert outcome.result is not None
    return outcome.result


async def release(billing: Billing, *, request_id: str, reason: str) -> ReleaseResult:
    """Give a hold back whole (the request was never served); idempotent."""
    async with billing.pool.acquire() as conn, conn.transaction():
        result = await accounting.release(conn, request_id=request_id, reason=reason)
    RELEASES.labels("repeated" if result.already_released else "released").inc()
    return result


async def _apply(
    billing: Billing, settlements: list[SettleInput]
) -> tuple[dict[int, batch.SettleOutcome], list[int]]:
    async with billing.pool.acquire() as conn, conn.transaction():
        locked = await leases.materialise(conn, specs=settlements)
        applied = await batch.apply(
            conn, settlements=settlements, price_of=live_prices(billing.prices.table), leases=locked
        )
        await leases.spend(conn, leases=locked)
    await asyncio.gather(
        *(
            events.settled(billing, settlements[i], o.result, o.balance)
            for i, o in applied.outcomes.items()
            if o.result is not None
        )
    )
    return applied.outcomes, applied.leftovers


def live_prices(table: PricingTable) -> batch.PriceOf:
    """A hold is charged at the price in force when it settles (the live table, so a price
    change applies at once), looked up once per (model, group) in a batch; a model no longer
    priced keeps the price its hold was placed at."""
    seen: dict[tuple[str, str], PriceSnapshot] = {}

    def price_of(hold: Hold) -> PriceSnapshot:
        key = (hold.model, hold.group)
        if key not in seen:
            try:
                seen[key] = table.resolve(hold.model, hold.group)
            except DomainError:
                seen[key] = hold.price
        return seen[key]

    return price_of


async def _answer(
    billing: Billing, request_ids: list[str]
) -> dict[str, SettleResult | DomainError]:
    """The answers for items the batch did not apply: a repeated request id gets the result
    of its settlement; an unknown or released hold its error (one statement for all)."""
    async with billing.pool.acquire() as conn, conn.transaction():
        return await settlement.answer_existing(conn, request_ids=request_ids)


async def _apply_each(
    billing: Billing, settlements: list[SettleInput]
) -> tuple[dict[int, batch.SettleOutcome], list[int]]:
    outcomes: dict[int, batch.SettleOutcome] = {}
    leftovers: list[int] = []
    for index, spec in enumerate(settlements):
        try:
            one, rest = await _apply(billing, [spec])
        except DomainError as exc:
            outcomes[index] = batch.SettleOutcome(error=exc)
            continue
        except leases.ConcurrentSettlement:
            rest = [0]  # settled meanwhile by someone else: reported as already settled
            one = {}
        if 0 in one:
            outcomes[index] = one[0]
        if rest:
            leftovers.append(index)
    return outcomes, leftovers
