"""Text to integers: only ASCII digits count, within a digit budget."""

from __future__ import annotations

import pytest

from services.shared.numbers import ascii_int


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ("42", {}, 42),
        ("007", {}, 7),
        ("9" * 18, {}, 10**18 - 1),
        ("9" * 19, {}, None),  # beyond an int64's worth of digits
        ("123", {"max_digits": 2}, None),
        ("", {}, None),
        ("²", {}, None),  # a digit to str.isdigit, a ValueError to int()
        ("٣", {}, None),  # int() would read 3
        ("1 2", {}, None),
        (" 12", {}, None),
        ("-5", {}, None),
        ("-5", {"signed": True}, -5),
        ("+5", {"signed": True}, 5),
        ("-", {"signed": True}, None),
        ("--5", {"signed": True}, None),
    ],
)
def test_ascii_int(text: str, kwargs: dict[str, int | bool], expected: int | None) -> None:
    assert ascii_int(text, **kwargs) == expected  # type: ignore[arg-type]
