"""The checked-in taxonomy is a valid tree, extensible by configuration, and usable on columns."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from server.taxonomy import Taxonomy, TaxonomyError, UnknownTopicError, load_taxonomy


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


def write_extra(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "extra_topics.csv"
    path.write_text(text)
    return path


def test_checked_in_file_has_a_few_hundred_topics_with_unique_ids(taxonomy: Taxonomy) -> None:
    assert 250 <= len(taxonomy) <= 400
    assert taxonomy.frame["id"].n_unique() == len(taxonomy)
    assert taxonomy.frame["name"].str.to_lowercase().n_unique() == len(taxonomy)


def test_every_parent_exists_and_tier_one_matches_the_iab_top_level(taxonomy: Taxonomy) -> None:
    frame = taxonomy.frame
    parents = frame["parent"].drop_nulls()
    assert parents.is_in(frame["id"].implode()).all()
    tier_one = set(frame.filter(pl.col("parent").is_null())["name"])
    assert {"Automotive", "News & Politics", "Sports", "Video Gaming", "Real Estate"} <= tier_one
    assert len(tier_one) == 29


def test_the_tree_has_no_cycles(taxonomy: Taxonomy) -> None:
    for topic in taxonomy.ids:
        chain = taxonomy.ancestors(topic)
        assert topic not in chain
        assert len(chain) == len(set(chain))
        assert all(t.count("/") < topic.count("/") for t in chain)


def test_half_lives_are_positive_and_news_fades_faster_than_homes(taxonomy: Taxonomy) -> None:
    assert (taxonomy.frame["half_life_days"] > 0).all()
    assert taxonomy.half_life_days("news-and-politics") <= 7
    assert taxonomy.half_life_days("real-estate") >= 60
    assert taxonomy.half_life_days("automotive") >= 60


def test_ancestors_are_nearest_first(taxonomy: Taxonomy) -> None:
    assert taxonomy.ancestors("sports/football/club-football") == ("sports/football", "sports")
    assert taxonomy.ancestors("sports") == ()
    with pytest.raises(UnknownTopicError):
        taxonomy.ancestors("sports/curling")


def test_special_categories_are_marked_sensitive_down_the_tree(taxonomy: Taxonomy) -> None:
    assert taxonomy.is_sensitive("medical-health/diseases-and-conditions/diabetes")
    assert taxonomy.is_sensitive("religion-and-spirituality")
    assert taxonomy.is_sensitive("news-and-politics/politics/elections")
    assert not taxonomy.is_sensitive("sports/football")


def test_extra_csv_adds_children_inheriting_half_life_and_sensitivity(tmp_path: Path) -> None:
    extra = write_extra(
        tmp_path,
        "id,parent,name,half_life_days\n"
        "sports/football/futsal,sports/football,Futsal,\n"
        "sports/football/futsal/beach-futsal,sports/football/futsal,Beach Futsal,5\n"
        "medical-health/rare-diseases,medical-health,Rare Diseases,\n"
        "knitting-machines,,Knitting Machines,120\n",
    )
    taxonomy = load_taxonomy(extra)
    assert len(taxonomy) == len(load_taxonomy()) + 4
    assert taxonomy.half_life_days("sports/football/futsal") == taxonomy.half_life_days("sports/football")
    assert taxonomy.half_life_days("sports/football/futsal/beach-futsal") == 5
    assert taxonomy.ancestors("sports/football/futsal/beach-futsal")[-1] == "sports"
    assert taxonomy.is_sensitive("medical-health/rare-diseases")
    assert not taxonomy.is_sensitive("knitting-machines")


@pytest.mark.parametrize(
    ("rows", "code", "row"),
    [
        ("sports/tennis,sports,Tennis Two,7\n", "DUPLICATE_ID", 3),
        ("sports/padel,sports/racket,Padel,7\n", "PARENT_MISMATCH", 3),
        ("sports/racket/padel,sports/racket,Padel,7\n", "MISSING_PARENT", 3),
        ("sports/padel,sports,padel,7\nsports/padel-two,sports,PADEL,7\n", "DUPLICATE_NAME", 3),
        ("sports/padel,sports,Tennis,7\n", "DUPLICATE_NAME", 3),
        ("sports/padel,sports,Padel,-3\n", "INVALID_HALF_LIFE", 3),
        ("sports/padel,sports,Padel,soon\n", "INVALID_HALF_LIFE", 3),
        ("Sports/Padel,Sports,Padel,7\n", "INVALID_ID", 3),
        ("sports/padel,sports,Padel,7\nsports/padel,sports,Padel Two,7\n", "DUPLICATE_ID", 3),
        ("gardening-tools,,Gardening Tools,\n", "INVALID_HALF_LIFE", 3),
    ],
)
def test_a_broken_extra_row_is_refused_with_its_row_number(tmp_path: Path, rows: str, code: str, row: int) -> None:
    extra = write_extra(
        tmp_path, "id,parent,name,half_life_days\nsports/squash-doubles,sports,Squash Doubles,7\n" + rows
    )
    with pytest.raises(TaxonomyError) as raised:
        load_taxonomy(extra)
    assert raised.value.code == code
    assert raised.value.row == row
    assert f"extra_topics.csv row {row}:" in str(raised.value)


def test_a_conflicting_id_is_named_in_the_message(tmp_path: Path) -> None:
    extra = write_extra(tmp_path, "id,parent,name,half_life_days\nsports/football,sports,Soccer,14\n")
    with pytest.raises(TaxonomyError, match=r"row 2: topic id 'sports/football' conflicts with an existing topic"):
        load_taxonomy(extra)


def test_extra_file_without_required_columns_is_refused(tmp_path: Path) -> None:
    extra = write_extra(tmp_path, "id,name\nsports/padel,Padel\n")
    with pytest.raises(TaxonomyError, match="parent") as raised:
        load_taxonomy(extra)
    assert raised.value.code == "MISSING_COLUMN"


def test_unknown_topics_are_dropped_and_counted_per_row(taxonomy: Taxonomy) -> None:
    events = pl.DataFrame(
        {
            "topics": [
                ["sports/football", "no-such-topic"],
                [],
                None,
                ["travel", "travel/travel-type/cruises"],
                [None, "x", "y"],
            ]
        },
        schema={"topics": pl.List(pl.String)},
    )
    split = taxonomy.split_known(pl.col("topics"))
    result = events.lazy().select(split.known.alias("topics"), split.unknown_count.alias("unknown")).collect()
    expected = pl.DataFrame(
        {
            "topics": [["sports/football"], [], [], ["travel", "travel/travel-type/cruises"], []],
            "unknown": [1, 0, 0, 0, 3],
        },
        schema={"topics": pl.List(pl.String), "unknown": pl.UInt32},
    )
    assert_frame_equal(result, expected)


def test_page_category_resolves_from_a_topic_id_or_any_case_of_its_name(taxonomy: Taxonomy) -> None:
    assert taxonomy.resolve_category("sports/football") == "sports/football"
    assert taxonomy.resolve_category("  food & DRINK ") == "food-and-drink"
    assert taxonomy.resolve_category("Club Football") == "sports/football/club-football"
    assert taxonomy.resolve_category("Curling") is None
    pages = pl.DataFrame({"category": ["Video Gaming", "travel/travel-type/cruises", "CRUISES", "nothing", None]})
    resolved = pages.select(taxonomy.category_topic(pl.col("category")).alias("topic"))["topic"].to_list()
    assert resolved == [
        "video-gaming",
        "travel/travel-type/cruises",
        "travel/travel-type/cruises",
        None,
        None,
    ]
