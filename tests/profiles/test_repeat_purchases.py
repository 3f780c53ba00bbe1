"""The repeat-purchase summary follows the ``lifetimes`` package, computed here by hand.

What ``lifetimes.utils.summary_data_from_transaction_data(transactions, "customer", "date",
monetary_value_col="amount", observation_period_end="2024-02-01", freq="D")`` gives for these
transactions (same-day purchases summed into one; the first purchase day left out of the mean):

    customer  frequency  recency   T  monetary_value
    a                 2       19  31            30.0   days 01-01 (10+5), 01-05 (20), 01-20 (40)
    b                 0        0  22             0.0   one purchase
    c                 0        0   5             0.0   two purchases on one day
    e                 0        0  17             0.0   the 02-02 purchase is after the end
    f                 1        1   1             7.0   a purchase late on the end day counts

Customer d only browsed and is not in the summary.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from server.profiles.features import features, repeat_purchases
from tests.profiles.frames import CONFIG, inputs_of

END = datetime(2024, 2, 1, 9, 30, tzinfo=UTC)


def at(month: int, day: int, hour: int = 12) -> datetime:
    return datetime(2024, month, day, hour, tzinfo=UTC)


TRANSACTIONS = [
    (1, "purchase", "web", at(1, 1, 10), None, 10.0),
    (1, "purchase", "app", at(1, 1, 15), None, 5.0),
    (1, "purchase", "web", at(1, 5), None, 20.0),
    (1, "page_view", "web", at(1, 7), None, None),
    (1, "purchase", "offline", at(1, 20), None, 40.0),
    (2, "purchase", "web", at(1, 10), None, 100.0),
    (3, "purchase", "web", at(1, 27, 8), None, 3.0),
    (3, "purchase", "web", at(1, 27, 9), None, 4.0),
    (4, "page_view", "web", at(1, 15), None, None),
    (5, "purchase", "web", at(1, 15), None, 10.0),
    (5, "purchase", "web", at(2, 2), None, 99.0),
    (6, "purchase", "web", at(1, 31), None, 2.0),
    (6, "purchase", "web", at(2, 1, 23), None, 7.0),
]


def test_summary_matches_the_lifetimes_conventions() -> None:
    summary = repeat_purchases(inputs_of(TRANSACTIONS).daily, as_of=END).sort("subject_id").collect()
    expected = pl.DataFrame(
        {
            "subject_id": [1, 2, 3, 5, 6],
            "repeat_frequency": [2, 0, 0, 0, 1],
            "repeat_recency": [19, 0, 0, 0, 1],
            "repeat_t": [31, 22, 5, 17, 1],
            "repeat_monetary": [30.0, 0.0, 0.0, 0.0, 7.0],
        },
        schema={
            "subject_id": pl.Int64(),
            "repeat_frequency": pl.Int64(),
            "repeat_recency": pl.Int32(),
            "repeat_t": pl.Int32(),
            "repeat_monetary": pl.Float64(),
        },
    )
    assert_frame_equal(summary, expected)


def test_a_profile_without_purchases_has_no_summary() -> None:
    rows = {
        row["subject_id"]: row
        for row in features(inputs_of(TRANSACTIONS), as_of=END, config=CONFIG, cut_points=None).collect().to_dicts()
    }
    assert rows[4]["repeat_frequency"] is None
    assert rows[4]["repeat_monetary"] is None
    assert rows[1]["repeat_monetary"] == pytest.approx(30.0)
