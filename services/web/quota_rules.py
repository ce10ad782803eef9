"""How an admin's user edit may change a balance: a new value only from the balance the form
was loaded with (a stale form never gives spent quota back), or an amount to add or subtract."""

from __future__ import annotations

from dataclasses import dataclass

# The largest balance or amount an admin may set: 2^53, the largest integer the console's
# JavaScript shows exactly (and far inside billing's int64 columns, so no sum overflows).
MAX_QUOTA = 2**53
TOO_LARGE = f"the resulting quota must be between 0 and {MAX_QUOTA}"


@dataclass(frozen=True, slots=True)
class QuotaEdit:
    """What the form sent: `quota` (new-api's field), `original_quota` (the balance the form
    was loaded with) and `quota_delta` (an amount to add, negative to subtract)."""

    quota: int | None
    original: int | None
    delta: int | None


@dataclass(frozen=True, slots=True)
class SetBalance:
    value: int
    expected: int  # billing refuses the change unless the balance still is this


@dataclass(frozen=True, slots=True)
class AddToBalance:
    delta: int


QuotaChange = SetBalance | AddToBalance


class QuotaEditRefused(Exception):
    """`out_of_range`: the input itself is unacceptable (HTTP 400), not just stale."""

    def __init__(self, message: str, *, out_of_range: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.out_of_range = out_of_range


NO_BASE = (
    "quota differs from the user's current balance ({current}) and the request does not say "
    "which balance it was edited from: send original_quota (the quota the form was loaded "
    "with), or quota_delta to add or subtract"
)
BOTH = "send either a new quota or quota_delta, not both"


def stale_message(original: int, current: int | None = None) -> str:
    now = "" if current is None else f" (it is now {current}, the form was loaded with {original})"
    return (
        f"the user's balance changed since the form was loaded{now}; reload the user and edit again"
    )


def quota_change(edit: QuotaEdit, current: int) -> QuotaChange | None:
    """The change to make, None when the balance stays as it is; `current` is the balance
    shown now. Raises QuotaEditRefused when the edit cannot be applied safely."""
    if edit.delta:
        if edit.quota is not None and edit.quota != _base(edit, current):
            raise QuotaEditRefused(BOTH)
        if current + edit.delta > MAX_QUOTA:
            raise QuotaEditRefused(TOO_LARGE, out_of_range=True)
        return AddToBalance(edit.delta)
    if edit.quota is None:
        return None
    if edit.original is None:
        # Without a base an absolute value would silently overwrite whatever moved since.
        if edit.quota == current:
            return None
        raise QuotaEditRefused(NO_BASE.format(current=current))
    if edit.quota == edit.original:
        return None  # the quota field was left as loaded; other fields may still change
    if edit.original != current:
        raise QuotaEditRefused(stale_message(edit.original, current))
    return SetBalance(value=edit.quota, expected=edit.original)


def _base(edit: QuotaEdit, current: int) -> int:
    return current if edit.original is None else edit.original
