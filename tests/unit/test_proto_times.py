"""Every time in the contracts follows one convention (proto/buf.yaml): an instant is an
`int64 <what>_time` in Unix seconds, a duration an `int64 <what>_ms` in milliseconds. buf lint
cannot check names for units, so this walks every message of the generated descriptors."""

from __future__ import annotations

import re
from collections.abc import Iterator

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from veloera.accounts.v1 import accounts_pb2
from veloera.accounts.v1 import events_pb2 as accounts_events_pb2
from veloera.billing.v1 import billing_pb2
from veloera.billing.v1 import events_pb2 as billing_events_pb2
from veloera.relay.v1 import relay_pb2
from veloera.tasks.v1 import tasks_pb2

MODULES = (
    accounts_pb2,
    accounts_events_pb2,
    billing_pb2,
    billing_events_pb2,
    relay_pb2,
    tasks_pb2,
)
# Names that say "a time" in some other way than the convention's two suffixes.
OTHER_TIME_WORDS = re.compile(
    r"(_at|_at_ms|_seconds?|_secs?|_minutes?|_hours?|_days?|timestamp|_until|_since|_ttl|_age"
    r"|_period|_window|_timeout|_delay|_interval|_duration)$"
)
# Usage.audio_seconds: a metered amount (audio is priced per second), not a time of the protocol.
METERED = {"veloera.billing.v1.Usage.audio_seconds"}


def _messages(descriptor: Descriptor) -> Iterator[Descriptor]:
    yield descriptor
    for nested in descriptor.nested_types:
        yield from _messages(nested)


def _fields() -> Iterator[FieldDescriptor]:
    for module in MODULES:
        for message in module.DESCRIPTOR.message_types_by_name.values():
            for descriptor in _messages(message):
                yield from descriptor.fields


def test_times_are_seconds_instants_or_millisecond_durations() -> None:
    wrong = [
        field.full_name
        for field in _fields()
        if OTHER_TIME_WORDS.search(field.name) and field.full_name not in METERED
    ]
    assert wrong == []


def test_every_time_field_is_a_64_bit_integer() -> None:
    fields = list(_fields())
    times = [f for f in fields if f.name.endswith(("_time", "_ms"))]
    assert len(times) > 40  # the walk sees the contracts
    assert [f.full_name for f in times if f.type != FieldDescriptor.TYPE_INT64] == []
