"""Scrubbing upstream error text: keys and addresses never reach a client."""

from __future__ import annotations

import pytest

from services.relay.upstream.scrub import REDACTED_ADDRESS, REDACTED_KEY, scrub


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("Incorrect API key provided: my-own-key-123.", ["my-own-key-123"],
         f"Incorrect API key provided: {REDACTED_KEY}."),
        ("bad key sk-proj-abcdef123456 given", [], f"bad key {REDACTED_KEY} given"),
        ("header was Bearer abc.def", [], f"header was Bearer {REDACTED_KEY}"),
        ("see http://10.0.0.5:8080/admin?x=1 now", [], f"see {REDACTED_ADDRESS} now"),
        ("dial tcp 192.168.1.4:9000: refused", [], f"dial tcp {REDACTED_ADDRESS}: refused"),
        ("at [fe80::1]:80 and ::1", [], f"at {REDACTED_ADDRESS} and {REDACTED_ADDRESS}"),
        ("llm.internal.corp:8443 timed out", [], f"{REDACTED_ADDRESS} timed out"),
        ("model gpt-4o does not exist at 12:30:45", [], "model gpt-4o does not exist at 12:30:45"),
        ("", ["k"], ""),
    ],
)  # fmt: skip
def test_keys_and_addresses_are_scrubbed(text: str, secrets: list[str], expected: str) -> None:
    assert scrub(text, secrets) == expected
