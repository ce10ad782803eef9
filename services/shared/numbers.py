"""Integers typed as text (headers, query strings, JSON strings, option values).

`str.isdigit` alone is not enough: it accepts `²` and other Unicode digits that `int()` rejects
(a ValueError, a 500) or reads as another number. Every place that turns client or upstream
text into an integer goes through `ascii_int`.
"""

from __future__ import annotations


def ascii_int(text: str, *, max_digits: int = 18, signed: bool = False) -> int | None:
    """`text` as an int when it is ASCII decimal digits (a leading `-` or `+` when `signed`),
    at most `max_digits` of them (18 fit an int64); otherwise None."""
    digits = text[1:] if signed and text[:1] in ("-", "+") else text
    if not digits or len(digits) > max_digits or not (digits.isascii() and digits.isdigit()):
        return None
    return int(text)
