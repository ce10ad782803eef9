"""CHANNEL_PROBE responder: the console and the tasks service ask the relays (one queue group)
to test a channel, query its balance or list its upstream models; the relay reads the channel
with its keys from accounts, calls the upstream through its own adaptors (checks.py, probe.py)
and records what it measured. Keys never leave accounts and the relays."""

from __future__ import annotations

import logging

import grpc
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.aio.subscription import Subscription
from veloera.accounts.v1 import accounts_pb2
from veloera.relay.v1 import relay_pb2

from services.relay.health import checks
from services.relay.health import probe as channel_probe
from services.relay.health.checks import ChannelNotFound, Probing
from services.relay.health.probe import ProbeError
from services.shared import natsutil, subjects

logger = logging.getLogger(__name__)

QUEUE = "relay-channel-probe"
Response = relay_pb2.ChannelProbeResponse


async def _test(probing: Probing, probe: relay_pb2.ChannelTestProbe) -> Response:
    channel = await checks.load_channel(probing, probe.channel_id)
    key_index = probe.key_index if probe.HasField("key_index") else None
    outcome = await checks.run_channel_test(
        probing, channel, model=probe.model, key_index=key_index
    )
    return Response(
        model=outcome.model,
        results=[
            relay_pb2.KeyProbeResult(
                key_index=r.key_index, success=r.success, response_ms=r.response_ms,
                message=r.message,
            )
            for r in outcome.results
        ],
        channel_disabled=outcome.disabled,
        channel_enabled=outcome.enabled,
        too_slow=outcome.too_slow,
    )  # fmt: skip


async def _balance(probing: Probing, ref: relay_pb2.ChannelRef) -> Response:
    channel = await checks.load_channel(probing, ref.channel_id)
    balance, updated = await checks.update_balance(probing, channel)
    return Response(balance=balance, balance_updated_time=updated)


async def _models(probing: Probing, channel: accounts_pb2.Channel) -> Response:
    models = await channel_probe.list_models(
        probing.session, channel, timeout=probing.timeout, allow_private=probing.allow_private
    )
    return Response(models=models)


async def _unsaved_models(probing: Probing, unsaved: relay_pb2.UnsavedChannel) -> Response:
    channel = accounts_pb2.Channel(type=unsaved.type, base_url=unsaved.base_url, key=unsaved.key)
    return await _models(probing, channel)


async def answer(data: bytes, probing: Probing) -> Response:
    """The probe's result, or why it could not be made (for admins; never a key)."""
    try:
        request = relay_pb2.ChannelProbeRequest.FromString(data)
    except DecodeError:
        return Response(error="undecodable request")
    kind = request.WhichOneof("probe")
    try:
        if kind == "test":
            return await _test(probing, request.test)
        if kind == "balance":
            return await _balance(probing, request.balance)
        if kind == "models":
            channel = await checks.load_channel(probing, request.models.channel_id)
            return await _models(probing, channel)
        if kind == "unsaved_models":
            return await _unsaved_models(probing, request.unsaved_models)
    except ChannelNotFound:
        return Response(not_found=True, error="channel not found")
    except ProbeError as exc:
        return Response(error=str(exc))
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:  # deleted, or its keys replaced, meanwhile
            return Response(not_found=True, error="channel not found")
        logger.warning("channel probe: accounts answered %s", exc.code().name)
        return Response(error=f"accounts is unavailable ({exc.code().name})")
    return Response(error="unknown probe")


async def serve(nc: NATS, probing: Probing) -> Subscription:
    return await natsutil.serve_requests(
        nc, subjects.CHANNEL_PROBE, QUEUE, lambda data: answer(data, probing)
    )
