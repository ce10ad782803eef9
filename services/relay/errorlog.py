"""Error log rows (upstream `controller/relay.go`): a type-6 log row per failed request when
LogErrorEnabled.
"""

from __future__ import annotations

import orjson
from veloera.billing.v1 import billing_pb2

from services.relay.job import Job
from services.relay.routing.table import ChannelInfo


def error_entry(
    job: Job,
    channel: ChannelInfo | None,
    *,
    status: int,
    type_: str,
    code: str,
    message: str,
) -> billing_pb2.LogEntry:
    """The row billing's WriteLog stores: who, which model, which channel, and the error."""
    entry = job.entry
    other: dict[str, object] = {
        "error_type": type_,
        "error_code": code,
        "status_code": status,
        "channel_id": channel.id if channel is not None else 0,
        "channel_name": channel.name if channel is not None else "",
        "channel_type": channel.type if channel is not None else 0,
        "admin_info": {"use_channel": list(job.tried)},
    }
    return billing_pb2.LogEntry(
        user_id=entry.user.id,
        type=billing_pb2.LOG_TYPE_ERROR,
        content=message,
        username=entry.user.username,
        token_name=entry.token.name,
        token_id=entry.token.id,
        model_name=job.model,
        is_stream=job.stream,
        channel_id=channel.id if channel is not None else 0,
        channel_name=channel.name if channel is not None else "",
        group=entry.group,
        other=orjson.dumps(other).decode(),
        client_ip=job.client_ip if entry.log_ip else "",
        request_id=job.request_id,
        elapsed_ms=job.elapsed_ms(),
    )
