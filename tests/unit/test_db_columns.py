"""`bus.db.columns`: the rows of a batch insert as the arrays one `unnest` statement takes."""

from __future__ import annotations

import pytest

from bus.db import columns


def test_rows_become_columns_in_row_order() -> None:
    rows = [("a", 1, None), ("b", 2, {"k": 1}), ("a", 3, None)]
    assert columns(rows, 3) == [["a", "b", "a"], [1, 2, 3], [None, {"k": 1}, None]]


def test_no_rows_are_empty_arrays_of_the_width() -> None:
    # An empty batch still binds every parameter of the statement.
    assert columns([], 4) == [[], [], [], []]


def test_a_row_of_another_width_is_refused() -> None:
    with pytest.raises(AssertionError):
        columns([("a", 1), ("b",)], 2)
