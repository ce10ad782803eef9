"""The SettleBatch use case: plain and leased settlements in one set-based transaction, the
rest item by item, then releases and lease returns."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import asyncpg

from services.billing import batch, lease_core, leases, settlement
from services.billing.settlement import SettleInput, SettleResult
from services.billing.store.holds import Hold
from services.shared.errors import DomainError
from services.shared.pricing import PriceSnapshot

if TYPE_CHECKING:
    from services.billing.core import BillingCore

logger = logging.getLogger(__name__)

_RETRY_ONE_BY_ONE = (DomainError, asyncpg.PostgresError, leases.ConcurrentSettlement)


async def settle_batch(
    core: BillingCore,
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
            outcomes, leftovers = await _apply(core, settlements)
        except _RETRY_ONE_BY_ONE:
            # One by one; for a single item this is one more try, which also answers an item
            # the other path (SettleBatch or the JetStream copy) settled at the same moment.
            if len(settlements) > 1:
                logger.warning("settle batch of %d failed; applying one by one", len(settlements))
            outcomes, leftovers = await _apply_each(core, settlements)
    if leftovers:
        answers = await _answer(core, [settlements[i].request_id for i in leftovers])
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
            result = await core.release(request_id=item.request_id, reason=item.reason)
            released.append(batch.ReleaseOutcome(result=result))
        except DomainError as exc:
            released.append(batch.ReleaseOutcome(error=exc))
    for lease_id in returns or []:
        try:
            await lease_core.give_back(core, lease_id)
        except DomainError as exc:
            logger.warning("lease %s not returned: %s", lease_id, exc.message)
    return [outcomes[i] for i in range(len(settlements))], released


async def _apply(
    core: BillingCore, settlements: list[SettleInput]
) -> tuple[dict[int, batch.SettleOutcome], list[int]]:
    async with core.pool.acquire() as conn, conn.transaction():
        locked = await leases.materialise(conn, specs=settlements)
        applied = await batch.apply(
            conn, settlements=settlements, price_of=live_prices(core), leases=locked
        )
        await leases.spend(conn, leases=locked)
    await asyncio.gather(
        *(
            core.after_settle(settlements[i], o.result, o.balance)
            for i, o in applied.outcomes.items()
            if o.result is not None
        )
    )
    return applied.outcomes, applied.leftovers


def live_prices(core: BillingCore) -> batch.PriceOf:
    """A hold is charged at the price in force when it settles (the live table, so a price
    change applies at once), looked up once per (model, group) in a batch; a model no longer
    priced keeps the price its hold was placed at."""
    table = core.prices.table
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
    core: BillingCore, request_ids: list[str]
) -> dict[str, SettleResult | DomainError]:
    """The answers for items the batch did not apply: a repeated request id gets the result
    of its settlement; an unknown or released hold its error (one statement for all)."""
    async with core.pool.acquire() as conn, conn.transaction():
        return await settlement.answer_existing(conn, request_ids=request_ids)


async def _apply_each(
    core: BillingCore, settlements: list[SettleInput]
) -> tuple[dict[int, batch.SettleOutcome], list[int]]:
    outcomes: dict[int, batch.SettleOutcome] = {}
    leftovers: list[int] = []
    for index, spec in enumerate(settlements):
        try:
            one, rest = await _apply(core, [spec])
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
