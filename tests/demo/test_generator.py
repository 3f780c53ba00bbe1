"""The demo population is seeded, realistic enough to exercise every path, and contains nothing real."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import phonenumbers
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from server.demo import SEGMENT_SCHEMA, DemoPopulation, generate_population, generate_to_directory, write_population
from server.demo.generator import (
    ATTRIBUTES_SCHEMA,
    CHANNELS,
    CONSENT_CHANGES_SCHEMA,
    DEFECTS_SCHEMA,
    EVENT_TYPES,
    EVENTS_SCHEMA,
    PARTNERS,
    RESERVED_EMAIL_DOMAINS,
)
from server.taxonomy import Taxonomy, load_taxonomy

END = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
DAYS = 180
PEOPLE = 2_000
WELL_FORMED_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(scope="module")
def population(taxonomy: Taxonomy) -> DemoPopulation:
    return generate_population(people=PEOPLE, days=DAYS, seed=7, end=END, taxonomy=taxonomy)


@pytest.fixture(scope="module")
def clean_events(population: DemoPopulation) -> pl.DataFrame:
    return population.events.join(population.defects, on="message_id", how="anti")


def test_same_seed_gives_identical_frames_and_another_seed_does_not(
    population: DemoPopulation, taxonomy: Taxonomy
) -> None:
    again = generate_population(people=PEOPLE, days=DAYS, seed=7, end=END, taxonomy=taxonomy)
    assert_frame_equal(again.events, population.events)
    assert_frame_equal(again.attributes, population.attributes)
    assert_frame_equal(again.consent_changes, population.consent_changes)
    assert_frame_equal(again.defects, population.defects)
    other = generate_population(people=PEOPLE, days=DAYS, seed=8, end=END, taxonomy=taxonomy)
    assert not other.events.head(100).equals(population.events.head(100))


def test_frames_have_exactly_the_documented_columns(population: DemoPopulation) -> None:
    assert population.events.schema == EVENTS_SCHEMA
    assert population.attributes.schema == ATTRIBUTES_SCHEMA
    assert population.consent_changes.schema == CONSENT_CHANGES_SCHEMA
    assert population.defects.schema == DEFECTS_SCHEMA
    assert population.attributes.height == PEOPLE
    assert population.attributes["user_id"].n_unique() == PEOPLE
    assert population.attributes["email"].n_unique() == PEOPLE


def test_event_count_scales_with_people_to_about_a_million_by_default(population: DemoPopulation) -> None:
    # 2,000 people are a hundredth of the default 20,000, which gives 0.8-1.2 M events.
    assert 80_000 <= population.events.height <= 120_000
    assert population.events["message_id"].n_unique() == population.events.height


def test_activity_is_heavy_tailed(population: DemoPopulation) -> None:
    per_device = population.events.group_by("anonymous_id").len()["len"]
    assert per_device.max() > 10 * per_device.median()  # type: ignore[operator]


def test_every_channel_and_event_type_occurs(population: DemoPopulation, clean_events: pl.DataFrame) -> None:
    assert set(population.events["channel"]) == set(CHANNELS)
    assert set(clean_events["event"]) == set(EVENT_TYPES)


def test_event_types_fit_their_channel(clean_events: pl.DataFrame) -> None:
    types_by_channel = {
        row["channel"]: set(row["event"])
        for row in clean_events.group_by("channel").agg(pl.col("event").unique()).iter_rows(named=True)
    }
    assert types_by_channel["email"] == {"email_open", "email_click"}
    assert types_by_channel["ads"] == {"ad_impression", "ad_click"}
    assert types_by_channel["offline"] == {"store_visit", "purchase"}
    assert "app_open" in types_by_channel["app"]
    assert "app_open" not in types_by_channel["web"]


def test_clean_events_fall_inside_the_window_with_a_weekly_rhythm(clean_events: pl.DataFrame) -> None:
    assert clean_events["timestamp"].min() >= END - timedelta(days=DAYS)  # type: ignore[operator]
    assert clean_events["timestamp"].max() < END  # type: ignore[operator]
    per_day = clean_events.group_by(pl.col("timestamp").dt.date().alias("day")).len()
    by_weekday = per_day.group_by(weekend=pl.col("day").dt.weekday() >= 6).agg(pl.col("len").mean())
    weekend, weekday = (by_weekday.filter(pl.col("weekend") == flag)["len"].item() for flag in (True, False))
    assert weekend > 1.1 * weekday


def test_purchases_carry_euro_amounts_and_nothing_else_does(clean_events: pl.DataFrame) -> None:
    purchases = clean_events.filter(pl.col("event") == "purchase")
    assert purchases["amount"].min() > 0  # type: ignore[operator]
    assert set(purchases["currency"]) == {"EUR"}
    assert clean_events.filter(pl.col("event") != "purchase")["amount"].null_count() == (
        clean_events.height - purchases.height
    )


def test_people_have_learnable_favourite_topics(clean_events: pl.DataFrame) -> None:
    mentions = clean_events.filter(pl.col("user_id").is_not_null()).explode("topics").drop_nulls("topics")
    per_user = (
        mentions.group_by("user_id", "topics")
        .len()
        .group_by("user_id")
        .agg(share=pl.col("len").max() / pl.col("len").sum(), mentions=pl.col("len").sum())
    )
    # With ~400 topics a uniform reader's top topic would hold a few percent of their mentions.
    assert per_user.filter(pl.col("mentions") >= 30)["share"].median() > 0.2  # type: ignore[operator]


def test_topics_and_categories_come_from_the_taxonomy(clean_events: pl.DataFrame, taxonomy: Taxonomy) -> None:
    split = taxonomy.split_known(pl.col("topics"))
    assert clean_events.select(split.unknown_count.sum()).item() == 0
    categories = clean_events.filter(pl.col("category").is_not_null())
    assert categories.height > 0
    assert categories.select(taxonomy.category_topic(pl.col("category")).null_count()).item() == 0


def test_some_people_use_two_devices_first_anonymously_then_logged_in(population: DemoPopulation) -> None:
    events = population.events
    logged_in = events.filter(pl.col("user_id").is_not_null() & pl.col("anonymous_id").is_not_null())
    two_devices = logged_in.group_by("user_id").agg(pl.col("anonymous_id").n_unique().alias("devices"))
    assert two_devices.filter(pl.col("devices") == 2).height >= 0.05 * two_devices.height
    first_identified = logged_in.group_by("anonymous_id").agg(pl.col("timestamp").min().alias("login"))
    anonymous_before = (
        events.filter(pl.col("user_id").is_null())
        .join(first_identified, on="anonymous_id")
        .filter(pl.col("timestamp") < pl.col("login"))
    )
    assert anonymous_before["anonymous_id"].n_unique() > 0.5 * first_identified.height
    # The login event carries the customer id, the device and the email together.
    assert logged_in.filter(pl.col("email").is_not_null()).height > 0


def test_partners_send_their_own_user_ids(population: DemoPopulation) -> None:
    partner_events = population.events.filter(pl.col("channel") == "partner")
    assert set(partner_events["partner"]) == set(PARTNERS)
    assert partner_events["partner_user_id"].null_count() == 0
    assert partner_events["user_id"].null_count() == partner_events.height
    per_id = partner_events.group_by("partner_user_id").agg(pl.col("partner").n_unique())
    assert (per_id["partner"] == 1).all()
    assert population.events.filter(pl.col("channel") != "partner")["partner"].null_count() == (
        population.events.height - partner_events.height
    )


def test_consent_is_withdrawn_part_way_by_a_few_percent(population: DemoPopulation) -> None:
    changes = population.consent_changes
    withdrawals = changes.filter(~pl.col("granted"))
    withdrawers = withdrawals["anonymous_id"].n_unique()
    assert 0.01 * PEOPLE <= withdrawers <= 0.08 * PEOPLE
    assert set(withdrawals["source"]) == {"preference-center", "gpc"}
    assert set(changes["purpose"]) == {"analytics", "personalization", "advertising", "profiling"}

    emptied = (
        withdrawals.filter(pl.col("source") == "preference-center")
        .group_by("anonymous_id")
        .agg(pl.col("timestamp").first().alias("withdrawn_at"))
    )
    seen = population.events.join(emptied, on="anonymous_id")
    after = seen.filter(pl.col("timestamp") > pl.col("withdrawn_at"))
    before = seen.filter(pl.col("timestamp") < pl.col("withdrawn_at"))
    assert after.height > 0
    assert (after["consent_purposes"].list.len() == 0).all()
    assert (before["consent_purposes"].list.len() > 0).any()

    gpc = population.events.filter("gpc")
    assert gpc.height > 0
    assert not gpc["consent_purposes"].list.contains("advertising").any()


def test_about_half_a_percent_of_records_are_broken_each_in_a_detectable_way(
    population: DemoPopulation, clean_events: pl.DataFrame, taxonomy: Taxonomy
) -> None:
    events, defects = population.events, population.defects
    assert defects.height == pytest.approx(0.005 * events.height, rel=0.01)
    assert set(defects["defect"]) == {"future_timestamp", "malformed_email", "unknown_event_type", "unknown_topic"}
    broken = events.join(defects, on="message_id")
    split = taxonomy.split_known(pl.col("topics"))
    checks = broken.select(
        pl.col("defect"),
        future=pl.col("timestamp") > END,
        malformed=~pl.col("email").str.contains(WELL_FORMED_EMAIL).fill_null(value=True),
        unknown_type=~pl.col("event").is_in(EVENT_TYPES),
        unknown_topic=split.unknown_count > 0,
    )
    for defect, flag in [
        ("future_timestamp", "future"),
        ("malformed_email", "malformed"),
        ("unknown_event_type", "unknown_type"),
        ("unknown_topic", "unknown_topic"),
    ]:
        assert checks.filter(pl.col("defect") == defect)[flag].all(), defect
    assert clean_events["event"].is_in(EVENT_TYPES).all()
    assert clean_events["email"].drop_nulls().str.contains(WELL_FORMED_EMAIL).all()


def test_emails_use_only_reserved_domains(population: DemoPopulation) -> None:
    emails = pl.concat([population.events["email"], population.attributes["email"]]).drop_nulls()
    well_formed = emails.filter(emails.str.contains(WELL_FORMED_EMAIL))
    domains = well_formed.str.to_lowercase().str.extract(r"@(.+)$")
    assert set(domains) == set(RESERVED_EMAIL_DOMAINS)
    assert not emails.str.to_lowercase().str.contains(r"@(gmail|yahoo|hotmail|outlook|orange|free)\.").any()


def test_phones_are_valid_e164_numbers(population: DemoPopulation) -> None:
    phones = pl.concat([population.events["phone"], population.attributes["phone"]]).drop_nulls().unique()
    assert phones.len() > 0.4 * PEOPLE
    for phone in phones:
        parsed = phonenumbers.parse(phone)
        assert phonenumbers.is_valid_number(parsed), phone
        assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == phone
    assert population.attributes["phone"].drop_nulls().is_unique().all()


def test_consent_purposes_are_from_the_fixed_vocabulary(population: DemoPopulation) -> None:
    purposes = population.events["consent_purposes"].explode().drop_nulls().unique()
    assert set(purposes) <= {"analytics", "personalization", "advertising", "profiling"}


def test_naive_end_time_is_refused(taxonomy: Taxonomy) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generate_population(people=10, end=datetime(2025, 1, 1), taxonomy=taxonomy)


def test_written_files_round_trip(population: DemoPopulation, tmp_path: Path) -> None:
    paths = write_population(population, tmp_path)
    assert {p.name for p in paths} >= {"events.parquet", "events.csv", "events.ndjson", "attributes.parquet"}

    assert_frame_equal(pl.read_parquet(tmp_path / "events.parquet"), population.events)
    assert_frame_equal(pl.read_parquet(tmp_path / "attributes.parquet"), population.attributes)

    from_csv = pl.read_csv(tmp_path / "events.csv", schema_overrides={"phone": pl.String}).with_columns(
        pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%S%.3fZ", time_zone="UTC", time_unit="us"),
        pl.col("topics", "consent_purposes")
        .replace("", None)
        .str.split(";")
        .fill_null(pl.lit([], dtype=pl.List(pl.String))),
    )
    assert_frame_equal(from_csv, population.events, check_dtypes=False)

    nested = pl.read_ndjson(tmp_path / "events.ndjson", schema=SEGMENT_SCHEMA)
    assert nested.schema == pl.read_ndjson(tmp_path / "events.ndjson", infer_schema_length=None).schema
    assert nested.columns == [
        "messageId",
        "type",
        "channel",
        "timestamp",
        "userId",
        "anonymousId",
        "context",
        "properties",
    ]
    flattened = nested.select(
        message_id="messageId",
        event="type",
        channel="channel",
        timestamp=pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%S%.3fZ", time_zone="UTC", time_unit="us"),
        user_id="userId",
        anonymous_id="anonymousId",
        email=pl.col("context").struct["traits"].struct["email"],
        phone=pl.col("context").struct["traits"].struct["phone"],
        partner=pl.col("context").struct["partner"],
        partner_user_id=pl.col("context").struct["partnerUserId"],
        topics=pl.col("properties").struct["topics"],
        category=pl.col("properties").struct["category"],
        amount=pl.col("properties").struct["amount"],
        currency=pl.col("properties").struct["currency"],
        campaign=pl.col("properties").struct["campaign"],
        region=pl.col("properties").struct["region"],
        consent_purposes=pl.col("context").struct["consent"].struct["purposes"],
        gpc=pl.col("context").struct["consent"].struct["gpc"],
    )
    assert_frame_equal(flattened, population.events)


def test_generate_to_directory_reports_progress_to_completion(tmp_path: Path) -> None:
    seen: list[tuple[str, float]] = []
    paths = generate_to_directory(
        tmp_path, people=200, days=30, seed=1, end=END, formats=("parquet",), progress=lambda s, f: seen.append((s, f))
    )
    assert [p.name for p in paths] == [
        "events.parquet",
        "attributes.parquet",
        "consent_changes.parquet",
        "defects.parquet",
    ]
    fractions = [fraction for _, fraction in seen]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    with pytest.raises(ValueError, match="unknown format"):
        generate_to_directory(tmp_path, people=10, end=END, formats=("xml",))  # type: ignore[arg-type]


@pytest.mark.slow
def test_default_size_gives_about_a_million_events(taxonomy: Taxonomy) -> None:
    """Speed is measured by bench scripts, not asserted here."""
    population = generate_population(end=END, taxonomy=taxonomy)
    assert 800_000 <= population.events.height <= 1_200_000
