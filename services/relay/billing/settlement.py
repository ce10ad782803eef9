"""What a served request is charged: its usage, bounded, as one SettleRequest."""

from __future__ import annotations

import orjson
from veloera.billing.v1 import billing_pb2

from services.relay.adaptors.base import UsageCounts
from services.relay.job import Job
from services.relay.metering.content import chat_content
from services.relay.metering.usage import bounded
from services.relay.metrics import TOKENS
from services.relay.routing.table import ChannelInfo


def settle(
    job: Job,
    channel: ChannelInfo,
    upstream_model: str,
    usage: UsageCounts,
    *,
    first_response_ms: int,
    interrupted: bool,
    output: str = "",
) -> None:
    """Settle the request's hold (once: see `Charge`) with the usage it is billed for."""

    def build() -> billing_pb2.SettleRequest:
        return settle_request(
            job,
            channel,
            upstream_model,
            usage,
            first_response_ms=first_response_ms,
            interrupted=interrupted,
            output=output,
        )

    job.charge.settle(build)


def settle_request(
    job: Job,
    channel: ChannelInfo,
    upstream_model: str,
    reported: UsageCounts,
    *,
    first_response_ms: int,
    interrupted: bool,
    output: str,
) -> billing_pb2.SettleRequest:
    usage = bounded(reported, job.max_output)
    entry = job.entry
    estimated = "true" if usage.estimated else "false"
    TOKENS.labels("in", estimated).inc(usage.prompt_tokens)
    TOKENS.labels("out", estimated).inc(usage.completion_tokens)
    return billing_pb2.SettleRequest(
        request_id=job.request_id,
        usage=_usage(job, usage),
        username=entry.user.username,
        token_name=entry.token.name,
        model_name=job.model,
        upstream_model=upstream_model,
        channel_id=channel.id,
        channel_name=channel.name,
        is_stream=job.stream,
        elapsed_ms=job.elapsed_ms(),
        first_response_ms=first_response_ms,
        channels_tried=job.tried,
        client_ip=job.client_ip if entry.log_ip else "",
        other_json=_other(job, usage, output),
        interrupted=interrupted,
        quota_warning_threshold=entry.quota_warning_threshold,
    )


def _usage(job: Job, usage: UsageCounts) -> billing_pb2.Usage:
    return billing_pb2.Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        cache_creation_tokens=usage.cache_creation_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        audio_input_tokens=usage.audio_input_tokens,
        audio_output_tokens=usage.audio_output_tokens,
        estimated=usage.estimated,
        image_count=usage.image_count,
        characters=usage.characters,
        audio_seconds=usage.audio_seconds,
        image_size=job.meter.image_size,
        image_quality=job.meter.image_quality,
        kind=job.req.endpoint.kind,
    )


def _other(job: Job, usage: UsageCounts, output: str) -> str:
    """The log row's extra fields: effort, the clamp flag, content when logging is on."""
    extra: dict[str, object] = {"reasoning_effort": job.effort} if job.effort else {}
    if usage.clamped:
        extra["usage_clamped"] = True  # the upstream's report was odd or beyond the hold
    if job.options.log_chat_content:
        extra.update(chat_content(job.req, output))
    return orjson.dumps(extra).decode() if extra else ""
