"""The published aggregates: what BI tools read is what an analyst would be told, never less
suppressed, never a person, and replaced whole on each publish."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta

import polars as pl
import pytest

from privacy.anonymity import BELOW_K
from privacy.keyring import Keyring
from server.analytics.ledger import period_of, spent
from server.analytics.publish import BI_PUBLISHER, publish, publish_when_due, size_question
from server.analytics.release import Asker, Truth, release
from server.auth.principal import SYSTEM_ACTOR
from server.jobs.segment_worker import SegmentWorker
from server.runtime import Runtime, build_runtime
from server.settings import Settings
from server.storage.bi_schema import BI_VIEWS, published_rows
from tests.analytics.bi_population import EVERYONE, FEW_BUYERS, PEOPLE, K, populate
from tests.analytics.conftest import QUIET
from tests.ingest.batches import fixed_clock
from tests.segments.test_worker import eventually


@pytest.fixture
def bi_runtime(settings: Settings, keyring: Keyring) -> Iterator[Runtime]:
    """k = 10, and a per-key limit of one release per period (the publisher is not bound by it)."""
    tuned = settings.model_copy(update={**QUIET, "analytics_releases_per_period": 1})
    built = build_runtime(tuned, keyring=keyring)
    try:
        yield fixed_clock(built)
    finally:
        built.dispose()


def _rows(runtime: Runtime) -> pl.DataFrame:
    with runtime.sessions() as session:
        return published_rows(session)


def test_published_sizes_and_breakdowns_are_released_figures(bi_runtime: Runtime) -> None:
    populate(bi_runtime)
    done = publish(bi_runtime)  # many releases, though any other key may make one per period
    rows = _rows(bi_runtime)
    assert done.rows == rows.height > 0

    sizes = {r["subject_label"]: r for r in rows.filter(pl.col("aggregate") == "segment_size").iter_rows(named=True)}
    assert set(sizes) == {EVERYONE, FEW_BUYERS}
    assert sizes[FEW_BUYERS]["value"] is None
    assert sizes[FEW_BUYERS]["suppressed"] == BELOW_K
    assert sizes[EVERYONE]["value"] >= K
    assert sizes[EVERYONE]["method"] == "noisy"
    assert sizes[EVERYONE]["cell"] is None

    regions = rows.filter(
        (pl.col("aggregate") == "segment_breakdown")
        & (pl.col("subject_label") == EVERYONE)
        & (pl.col("dimension") == "region")
    )
    shown = {r["cell"]: (r["value"] is not None, r["suppressed"]) for r in regions.iter_rows(named=True)}
    # DE (3) is below k: never named, its people are in "other". "(none)" (70) is the smallest
    # shown cell: hidden, or the size minus FR would tell how few the hidden ones hold.
    assert shown == {"FR": (True, None), "other": (False, BELOW_K), "(none)": (False, BELOW_K)}
    assert set(rows.filter(pl.col("aggregate") == "segment_breakdown")["dimension"].unique()) <= {
        "lifecycle",
        "value_tier",
        "age_band",
        "region",
    }
    assert rows.filter(pl.col("aggregate") == "segment_breakdown")["cell"].null_count() == 0, "cells only"
    few = rows.filter(pl.col("subject_label") == FEW_BUYERS)
    assert few["value"].null_count() == few.height, "a segment below k shows nothing, in no cell"

    visible = rows.filter(pl.col("value").is_not_null())["value"].to_list()
    assert min(visible) >= K + 3, "k plus three noise scales of 1: the noisy threshold"
    assert (rows["value"].is_null() == rows["suppressed"].is_not_null()).all()


def test_a_published_figure_is_what_any_analyst_gets_for_the_same_question(bi_runtime: Runtime) -> None:
    ids = populate(bi_runtime)
    publish(bi_runtime)
    published = _rows(bi_runtime).filter(pl.col("subject_label") == EVERYONE, pl.col("aggregate") == "segment_size")
    with bi_runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        answer = release(
            unit.session,
            Asker(key_id="some-analyst", may_ask_exact=False),
            size_question(ids[EVERYONE]),
            Truth(PEOPLE),
            settings=bi_runtime.settings,
            noise=unit.kit.noise,
            as_of=unit.clock(),
        )
    assert answer.total.value == published["value"].item(), "sticky noise: the same question, the same number"


def test_publishing_again_replaces_the_rows_and_costs_nothing_new(bi_runtime: Runtime) -> None:
    populate(bi_runtime)
    publish(bi_runtime)
    first = _rows(bi_runtime)
    publish(bi_runtime)
    again = _rows(bi_runtime)
    assert again.equals(first), "the same data: the same rows, once each"
    with bi_runtime.sessions() as session:
        used = spent(session, BI_PUBLISHER.key_id, period_of(bi_runtime.clock(), 1))
    assert used.releases == 2 + 2 * 4, "one release per question; a repeat over unchanged data is free"


def test_views_show_the_published_rows_of_their_aggregate(bi_runtime: Runtime) -> None:
    populate(bi_runtime)
    publish(bi_runtime)
    rows = _rows(bi_runtime)
    views = {view.name: view.frame(rows) for view in BI_VIEWS}
    assert views["segment_sizes"].height == 2
    assert views["segment_breakdowns"].height + 2 == rows.height
    assert views["aggregates"].height == rows.height
    for frame in views.values():
        assert not [name for name in frame.columns if "subject_id" in name or name == "id"]


def test_a_breakdown_gets_the_same_noise_whatever_order_its_cells_come_in(bi_runtime: Runtime) -> None:
    """Otherwise asking again (or publishing again) would draw fresh noise to average for free."""
    question = size_question(1)
    cells = {f"cell-{n}": 60 + n for n in range(12)}  # well past the noisy threshold: shown
    with bi_runtime.unit_of_work(SYSTEM_ACTOR) as unit:
        answers = [
            release(
                unit.session,
                BI_PUBLISHER,
                question,
                Truth(sum(cells.values()), dict(order), sensitivity=2),
                settings=bi_runtime.settings.model_copy(update={"analytics_releases_per_period": 10}),
                noise=unit.kit.noise,
                as_of=unit.clock(),
            )
            for order in (sorted(cells.items()), sorted(cells.items(), reverse=True))
        ]
    assert answers[0].cells == answers[1].cells
    assert all(figure.value is not None for figure in answers[0].cells.values()), answers[0]


def test_the_segment_worker_publishes_when_due(bi_runtime: Runtime) -> None:
    populate(bi_runtime)
    worker = SegmentWorker(bi_runtime, poll_s=3600, sweep_s=0, publish_s=3600).start()  # the first round publishes
    try:
        assert eventually(lambda: _rows(bi_runtime).height > 0)
    finally:
        worker.stop()
    assert set(_rows(bi_runtime)["subject_label"]) == {EVERYONE, FEW_BUYERS}


def test_a_worker_skips_a_publish_another_process_made_within_the_interval(bi_runtime: Runtime) -> None:
    """Every server process runs a worker; the rows are shared, so they are published once per interval."""
    populate(bi_runtime)
    first = publish(bi_runtime)
    assert publish_when_due(bi_runtime, every=timedelta(hours=1)) is None
    assert _rows(bi_runtime)["as_of"].unique().to_list() == [first.as_of]
    later = dataclasses.replace(bi_runtime, clock=lambda: first.as_of + timedelta(hours=1))
    again = publish_when_due(later, every=timedelta(hours=1))
    assert again is not None
    assert again.as_of == first.as_of + timedelta(hours=1)
