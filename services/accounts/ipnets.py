"""IP allow-lists: exact addresses and CIDR ranges, IPv4 and IPv6."""

from __future__ import annotations

import ipaddress

from services.shared.errors import InvalidArgument

MAX_ENTRIES = 256


def normalize_entry(entry: str) -> str:
    """The canonical text of one allow-list entry; raises InvalidArgument when malformed."""
    text = entry.strip()
    try:
        if "/" in text:
            return str(ipaddress.ip_network(text, strict=False))
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise InvalidArgument(
            f"invalid IP or CIDR in allow_ips: {text!r}", code="invalid_allow_ips"
        ) from None


def normalize_allow_list(entries: list[str]) -> list[str]:
    """Blank entries are dropped, duplicates removed, order kept."""
    result: list[str] = []
    for entry in entries:
        if not entry.strip():
            continue
        canonical = normalize_entry(entry)
        if canonical not in result:
            result.append(canonical)
    if len(result) > MAX_ENTRIES:
        raise InvalidArgument(f"allow_ips holds at most {MAX_ENTRIES} entries")
    return result


def ip_allowed(ip: str, allow_list: list[str]) -> bool:
    """True when the list is empty or `ip` matches an exact entry or falls in a range."""
    if not allow_list:
        return True
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return False
    for entry in allow_list:
        network = ipaddress.ip_network(entry, strict=False)
        if address.version == network.version and address in network:
            return True
    return False
