"""The relay's settlement batcher and Biller: size and time bounded batches, the JetStream
fallback item by item when billing is unreachable, overflow, flush on shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from veloera.billing.v1 import billing_pb2, events_pb2

from services.relay.billing.batch import SettleBatcher
from services.relay.billing.biller import Biller, reserve_error
from services.shared import subjects
from services.shared.errors import ERROR_CODE_KEY


def settle(n: int) -> billing_pb2.SettleRequest:
    return billing_pb2.SettleRequest(request_id=f"req-{n}")


class Recorder:
    def __init__(self) -> None:
        self.batches: list[billing_pb2.SettleBatchRequest] = []
        self.queued_at: list[float] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, batch: billing_pb2.SettleBatchRequest, queued_at: float) -> None:
        await self.gate.wait()
        self.batches.append(batch)
        self.queued_at.append(queued_at)


def ids(batch: billing_pb2.SettleBatchRequest) -> list[str]:
    return [s.request_id for s in batch.settlements] + [r.request_id for r in batch.releases]


async def test_a_full_batch_goes_out_at_once_and_the_rest_after_the_window() -> None:
    sent, overflow = Recorder(), Recorder()
    batcher = SettleBatcher(sent, overflow=overflow, window=0.05, max_items=4, max_pending=100)
    for n in range(6):
        batcher.add(settlement=settle(n))
    await asyncio.sleep(0)
    assert [ids(b) for b in sent.batches] == [["req-0", "req-1", "req-2", "req-3"]]
    batcher.add(release=billing_pb2.ReleaseRequest(request_id="rel-1"))
    await asyncio.sleep(0.1)
    assert [ids(b) for b in sent.batches][1:] == [["req-4", "req-5", "rel-1"]]
    # The durability clock of a batch starts with its oldest item, not with the flush.
    assert sent.queued_at[1] <= sent.queued_at[0] + 0.01
    assert overflow.batches == [] and batcher.pending == 0


async def test_beyond_max_pending_items_go_to_the_overflow_not_lost() -> None:
    sent, overflow = Recorder(), Recorder()
    sent.gate.clear()  # billing is slow: batches stay in flight
    batcher = SettleBatcher(sent, overflow=overflow, window=1.0, max_items=2, max_pending=4)
    for n in range(7):
        batcher.add(settlement=settle(n))
    await asyncio.sleep(0)
    assert [ids(b) for b in overflow.batches] == [["req-4"], ["req-5"], ["req-6"]]
    sent.gate.set()
    await batcher.drain(1.0)
    assert sorted(i for b in sent.batches for i in ids(b)) == [f"req-{n}" for n in range(4)]


async def test_drain_flushes_what_is_buffered() -> None:
    sent, overflow = Recorder(), Recorder()
    batcher = SettleBatcher(sent, overflow=overflow, window=60.0, max_items=64, max_pending=100)
    batcher.add(settlement=settle(1))
    await batcher.drain(1.0)
    assert [ids(b) for b in sent.batches] == [["req-1"]]


class FakeJetStream:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    async def publish(self, subject: str, payload: bytes, **kw: Any) -> None:
        self.published.append((subject, payload))


class DownStub:
    """Billing is unreachable."""

    def __init__(self) -> None:
        self.calls = 0

    async def SettleBatch(self, request: Any, timeout: float) -> Any:
        self.calls += 1
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down"
        )


async def test_unreachable_billing_defers_every_item_to_jetstream() -> None:
    js, stub = FakeJetStream(), DownStub()
    biller = Biller(
        stub,  # type: ignore[arg-type]
        js,  # type: ignore[arg-type]
        settle_timeout=1.0,
        hold_ttl_seconds=60,
        batch_window=0.01,
    )
    biller.settle_later(settle(1))
    biller.settle_later(settle(2))
    biller.release_later("req-3", "client left")
    await biller.drain(1.0)
    assert stub.calls == 1
    [deferred] = [
        events_pb2.DeferredBatch.FromString(p).batch
        for s, p in js.published
        if s == subjects.SETTLE_BATCHES_SUBJECT
    ]  # one message for the whole batch
    settled = [item.request_id for item in deferred.settlements]
    released = [item.request_id for item in deferred.releases]
    assert settled == ["req-1", "req-2"] and released == ["req-3"]


def test_an_unpriced_model_is_a_4xx_naming_the_model_and_the_fix() -> None:
    error = grpc.aio.AioRpcError(
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.aio.Metadata(),
        grpc.aio.Metadata((ERROR_CODE_KEY, "model_price_error")),
        "model m-x has no price or ratio configured",
    )
    relay_error = reserve_error(error)
    assert relay_error.status == 403 and relay_error.code == "model_price_error"
    assert "m-x" in relay_error.message and "ModelPrice" in relay_error.message
