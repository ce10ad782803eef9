"""The rules for a balance change from the admin user edit form."""

from __future__ import annotations

import pytest

from services.web.quota_rules import (
    AddToBalance,
    QuotaEdit,
    QuotaEditRefused,
    SetBalance,
    quota_change,
)


def edit(
    quota: int | None = None, original: int | None = None, delta: int | None = None
) -> QuotaEdit:
    return QuotaEdit(quota=quota, original=original, delta=delta)


def test_a_new_value_from_the_current_balance_is_set_against_that_balance() -> None:
    assert quota_change(edit(500, original=100), current=100) == SetBalance(500, expected=100)


def test_a_new_value_from_a_stale_balance_is_refused() -> None:
    with pytest.raises(QuotaEditRefused, match="changed since the form was loaded"):
        quota_change(edit(500, original=100), current=60)


def test_a_quota_left_as_loaded_changes_nothing_even_when_stale() -> None:
    assert quota_change(edit(100, original=100), current=60) is None


def test_a_quota_without_a_base_must_equal_the_current_balance() -> None:
    assert quota_change(edit(60), current=60) is None
    with pytest.raises(QuotaEditRefused, match="original_quota"):
        quota_change(edit(100), current=60)


def test_a_delta_needs_no_base_and_ignores_an_unedited_quota() -> None:
    assert quota_change(edit(delta=-40), current=60) == AddToBalance(-40)
    assert quota_change(edit(100, original=100, delta=5), current=60) == AddToBalance(5)
    assert quota_change(edit(60, delta=5), current=60) == AddToBalance(5)


def test_a_delta_with_an_edited_quota_is_refused() -> None:
    with pytest.raises(QuotaEditRefused, match="not both"):
        quota_change(edit(1, original=100, delta=5), current=100)


def test_no_quota_and_a_zero_delta_change_nothing() -> None:
    assert quota_change(edit(delta=0), current=60) is None
    assert quota_change(edit(), current=60) is None
