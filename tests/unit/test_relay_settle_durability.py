"""The relay's settlements are durable soon after the response: a batch billing has not
answered within the durability window also goes to JetStream, a failed publish is retried until
acknowledged, and nothing is published when billing answers in time."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from veloera.billing.v1 import billing_pb2, events_pb2

from services.relay.billing.biller import Biller
from services.shared import subjects


def settle(n: int) -> billing_pb2.SettleRequest:
    return billing_pb2.SettleRequest(request_id=f"req-{n}")


class FlakyJetStream:
    """Fails the first `failures` publishes (NATS restarting), then acknowledges."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.published: list[tuple[str, bytes, dict[str, str]]] = []
        self.attempted_ids: list[str] = []  # Nats-Msg-Id of every attempt, failed ones too

    async def publish(self, subject: str, payload: bytes, **kw: Any) -> None:
        self.attempted_ids.append(dict(kw.get("headers") or {}).get("Nats-Msg-Id", ""))
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("nats is restarting")
        self.published.append((subject, payload, dict(kw.get("headers") or {})))

    def batches(self) -> list[billing_pb2.SettleBatchRequest]:
        return [
            events_pb2.DeferredBatch.FromString(p).batch
            for s, p, _ in self.published
            if s == subjects.SETTLE_BATCHES_SUBJECT
        ]

    def settled(self) -> list[str]:
        return [item.request_id for batch in self.batches() for item in batch.settlements]

    def released(self) -> list[str]:
        return [item.request_id for batch in self.batches() for item in batch.releases]


class Billing:
    """A SettleBatch that answers at once, never, or with a status code."""

    def __init__(self, *, hang: bool = False, fail: grpc.StatusCode | None = None) -> None:
        self.hang = hang
        self.fail = fail
        self.calls = 0
        self.answered: list[str] = []

    async def SettleBatch(self, request: Any, timeout: float) -> Any:
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.fail is not None:
            raise grpc.aio.AioRpcError(self.fail, grpc.aio.Metadata(), grpc.aio.Metadata(), "no")
        self.answered += [s.request_id for s in request.settlements]
        return billing_pb2.SettleBatchResponse()


def biller(stub: Billing, js: FlakyJetStream | None) -> Biller:
    return Biller(
        stub,  # type: ignore[arg-type]
        js,  # type: ignore[arg-type]
        settle_timeout=60.0,
        hold_ttl_seconds=60,
        batch_window=0.01,
        publish_backoff=0.01,
    )


async def test_a_batch_billing_does_not_answer_goes_to_jetstream_without_waiting_the_timeout() -> (
    None
):
    js, stub = FlakyJetStream(), Billing(hang=True)
    relay = biller(stub, js)
    relay.settle_later(settle(1))
    relay.release_later("req-2", "client left")
    await relay.drain(5.0)  # the SettleBatch call never answers: only JetStream can finish
    assert js.settled() == ["req-1"] and js.released() == ["req-2"]
    assert stub.calls == 1


async def test_a_failed_publish_is_retried_until_acknowledged_never_dropped() -> None:
    js, stub = FlakyJetStream(failures=5), Billing(fail=grpc.StatusCode.UNAVAILABLE)
    relay = biller(stub, js)
    relay.settle_later(settle(1))
    relay.settle_later(settle(2))
    await relay.drain(5.0)
    assert sorted(js.settled()) == ["req-1", "req-2"]
    # One message for the batch, every retry under the same id (JetStream stores it once).
    [(_, payload, headers)] = js.published
    batch_id = events_pb2.DeferredBatch.FromString(payload).batch_id
    assert batch_id and headers["Nats-Msg-Id"] == batch_id
    assert js.attempted_ids == [batch_id] * 6


async def test_any_billing_error_defers_the_batch_rather_than_dropping_it() -> None:
    js, stub = FlakyJetStream(), Billing(fail=grpc.StatusCode.INTERNAL)
    relay = biller(stub, js)
    relay.settle_later(settle(1))
    await relay.drain(5.0)
    assert js.settled() == ["req-1"]


async def test_billing_answering_in_time_publishes_nothing() -> None:
    js, stub = FlakyJetStream(), Billing()
    relay = biller(stub, js)
    for n in range(5):
        relay.settle_later(settle(n))
    await relay.drain(5.0)
    assert js.published == [] and sorted(stub.answered) == [f"req-{n}" for n in range(5)]


class Recovering(Billing):
    """Unavailable for the first `outages` calls."""

    def __init__(self, outages: int) -> None:
        super().__init__()
        self.outages = outages

    async def SettleBatch(self, request: Any, timeout: float) -> Any:
        if self.outages > 0:
            self.outages -= 1
            self.calls += 1
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down"
            )
        return await super().SettleBatch(request, timeout)


async def test_without_jetstream_the_call_is_retried_until_billing_answers() -> None:
    stub = Recovering(outages=3)
    relay = biller(stub, None)
    relay.settle_later(settle(1))
    await relay.drain(5.0)
    assert stub.answered == ["req-1"] and stub.calls == 4
