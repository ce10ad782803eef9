"""Scrubbing upstream error text before a client (or a log row, or accounts) sees it.

An upstream's error message can quote the key it was sent ("Incorrect API key provided:
sk-...") and its own internal addresses. Runs on the error path only.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

REDACTED_KEY = "[key redacted]"
REDACTED_ADDRESS = "[address redacted]"
MIN_SECRET_LENGTH = 4  # shorter "keys" would blank ordinary words

# Key-shaped tokens of common providers (`sk-...`, `sk-ant-...`, `AIza...`), and bearer values.
_KEYLIKE = re.compile(
    r"\b(?:sk|rk|pk|ak|key)-[A-Za-z0-9_\-]{6,}|\bAIza[0-9A-Za-z_\-]{20,}|(?<=Bearer )\S+",
    re.IGNORECASE,
)
_URL = re.compile(r"\b[a-z][a-z0-9+.\-]*://[^\s\"'<>)\]]+", re.IGNORECASE)
_HOST_PORT = re.compile(r"\b(?:[a-z0-9\-]+\.)+[a-z0-9\-]+:\d{2,5}\b", re.IGNORECASE)
_IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?![\w.])")
_IPV6 = re.compile(r"\[?(?<![\w:])(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}(?![\w:])\]?(?::\d{1,5})?",
                   re.IGNORECASE)  # fmt: skip


def _ipv6(match: re.Match[str]) -> str:
    text = match.group(0)
    candidate = text.strip("[]").split("]")[0] if text.startswith("[") else text
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return text
    return REDACTED_ADDRESS


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without the given secrets, key-shaped tokens, URLs and network addresses."""
    if not text:
        return text
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH and secret in text:
            text = text.replace(secret, REDACTED_KEY)
    text = _KEYLIKE.sub(REDACTED_KEY, text)
    text = _URL.sub(REDACTED_ADDRESS, text)
    text = _HOST_PORT.sub(REDACTED_ADDRESS, text)
    text = _IPV4.sub(REDACTED_ADDRESS, text)
    return _IPV6.sub(_ipv6, text)
