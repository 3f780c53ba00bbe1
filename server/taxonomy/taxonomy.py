"""The topic taxonomy: which interests exist, how they nest, and how fast interest in each fades.

The checked-in ``topics.csv`` is IAB-Content-Taxonomy-like. Ids are slug paths whose prefix *is*
the parent (``sports/football`` under ``sports``), so ids stay stable when names are reworded and
a cycle cannot be written down. An operator may add topics with an extra CSV of the same shape;
in it ``half_life_days`` and ``sensitive`` may be left blank on a child to inherit the parent's.

``sensitive`` marks GDPR Art. 9 special categories (health, religion, political opinion) so that
profile building can treat inferred interests in them differently; a child of a sensitive topic
is always sensitive.

Exceptions::

    TaxonomyError            a topics file breaks a rule (carries code, source and row)
    └── UnknownTopicError    a lookup for a topic id the taxonomy does not hold
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import polars as pl

__all__ = [
    "TOPIC_SCHEMA",
    "Taxonomy",
    "TaxonomyError",
    "TopicSplit",
    "UnknownTopicError",
    "load_taxonomy",
    "taxonomy_for",
]

TOPIC_SCHEMA: Mapping[str, pl.DataType] = {
    "id": pl.String(),
    "parent": pl.String(),
    "name": pl.String(),
    "half_life_days": pl.Int32(),
    "sensitive": pl.Boolean(),
}

_PACKAGED_FILE = "topics.csv"
_REQUIRED_COLUMNS = ("id", "parent", "name")
_INHERITABLE_COLUMNS = ("half_life_days", "sensitive")
_SLUG_PATH = r"^[a-z0-9]+(?:-[a-z0-9]+)*(?:/[a-z0-9]+(?:-[a-z0-9]+)*)*$"
_ROW = "_row"


class TaxonomyError(Exception):
    """A topics file breaks a rule; ``row`` counts the header as row 1, as a spreadsheet does."""

    def __init__(self, code: str, message: str, *, source: str | None = None, row: int | None = None) -> None:
        located = f"{source} row {row}: {message}" if source is not None and row is not None else message
        super().__init__(located)
        self.code = code
        self.message = located
        self.source = source
        self.row = row


class UnknownTopicError(TaxonomyError):
    def __init__(self, topic_id: str) -> None:
        super().__init__("UNKNOWN_TOPIC", f"unknown topic id {topic_id!r}")


class TopicSplit(NamedTuple):
    """Two expressions over one list-of-topics column, to be used in the same ``select``."""

    known: pl.Expr
    unknown_count: pl.Expr


@dataclass(frozen=True, eq=False, slots=True)
class Taxonomy:
    """A validated topic tree; build it with :func:`load_taxonomy`, which checks the rules."""

    frame: pl.DataFrame
    ids: frozenset[str] = field(init=False)
    sensitive_ids: frozenset[str] = field(init=False)
    _ids_series: pl.Series = field(init=False, repr=False)
    _parents: Mapping[str, str | None] = field(init=False, repr=False)
    _half_lives: Mapping[str, int] = field(init=False, repr=False)
    _category_lookup: Mapping[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ids: list[str] = self.frame["id"].to_list()
        names: list[str] = self.frame["name"].to_list()
        # Ids win over names when a lowercased name happens to spell another topic's id.
        lookup = {name.strip().lower(): topic for name, topic in zip(names, ids, strict=True)}
        lookup.update({topic: topic for topic in ids})
        object.__setattr__(self, "ids", frozenset(ids))
        object.__setattr__(self, "sensitive_ids", frozenset(self.frame.filter("sensitive")["id"].to_list()))
        object.__setattr__(self, "_ids_series", self.frame["id"])
        object.__setattr__(self, "_parents", dict(zip(ids, self.frame["parent"].to_list(), strict=True)))
        object.__setattr__(self, "_half_lives", dict(zip(ids, self.frame["half_life_days"].to_list(), strict=True)))
        object.__setattr__(self, "_category_lookup", lookup)

    def __len__(self) -> int:
        return self.frame.height

    def __contains__(self, topic_id: object) -> bool:
        return topic_id in self.ids

    def ancestors(self, topic_id: str) -> tuple[str, ...]:
        """Nearest first, so interest can be rolled up one tier at a time."""
        if topic_id not in self._parents:
            raise UnknownTopicError(topic_id)
        chain: list[str] = []
        parent = self._parents[topic_id]
        while parent is not None:
            chain.append(parent)
            parent = self._parents[parent]
        return tuple(chain)

    def half_life_days(self, topic_id: str) -> int:
        if topic_id not in self._half_lives:
            raise UnknownTopicError(topic_id)
        return self._half_lives[topic_id]

    def is_sensitive(self, topic_id: str) -> bool:
        if topic_id not in self.ids:
            raise UnknownTopicError(topic_id)
        return topic_id in self.sensitive_ids

    def split_known(self, topics: pl.Expr) -> TopicSplit:
        """Keep known topics and count the rest, per row, without leaving Polars.

        A null list is read as "no topics" (empty, nothing dropped); a null element is unknown.
        """
        as_list = topics.fill_null(pl.lit([], dtype=pl.List(pl.String)))
        is_known = pl.element().is_in(pl.lit(self._ids_series).implode()).fill_null(value=False)
        known = as_list.list.eval(pl.element().filter(is_known))
        unknown_count = as_list.list.eval(is_known.not_()).list.sum().cast(pl.UInt32)
        return TopicSplit(known=known, unknown_count=unknown_count)

    def resolve_category(self, category: str) -> str | None:
        """A page category may be a topic id or a topic name in any case; ``None`` if neither."""
        return self._category_lookup.get(category.strip().lower())

    def category_topic(self, categories: pl.Expr) -> pl.Expr:
        """The column form of :meth:`resolve_category`: unresolvable categories become null."""
        return (
            categories.str.strip_chars()
            .str.to_lowercase()
            .replace_strict(self._category_lookup, default=None, return_dtype=pl.String)
        )


@cache
def taxonomy_for(extra: Path | None) -> Taxonomy:
    """Loaded once per process: the taxonomy is configuration, not data."""
    return load_taxonomy(extra)


def load_taxonomy(extra: Path | None = None) -> Taxonomy:
    """The packaged taxonomy, optionally extended by an operator's CSV (configuration, not code)."""
    packaged = resources.files(__package__).joinpath(_PACKAGED_FILE).read_bytes()
    frame = _extend(_empty_topics(), _read_topics(packaged), source=_PACKAGED_FILE)
    if extra is not None:
        frame = _extend(frame, _read_topics(extra.read_bytes()), source=extra.name)
    return Taxonomy(frame)


def _empty_topics() -> pl.DataFrame:
    return pl.DataFrame(schema=dict(TOPIC_SCHEMA))


def _read_topics(data: bytes) -> pl.DataFrame:
    """Everything is read as text so that a bad value becomes our error with a row, not a parse error."""
    raw = pl.read_csv(data, infer_schema=False)
    missing = [column for column in _REQUIRED_COLUMNS if column not in raw.columns]
    if missing:
        raise TaxonomyError("MISSING_COLUMN", f"topics file lacks column(s) {', '.join(missing)}")
    absent = [pl.lit(None, dtype=pl.String).alias(c) for c in _INHERITABLE_COLUMNS if c not in raw.columns]
    return raw.with_columns(absent).select(
        pl.int_range(2, pl.len() + 2, dtype=pl.UInt32).alias(_ROW),
        *(pl.col(column).str.strip_chars().replace("", None).alias(column) for column in TOPIC_SCHEMA),
    )


def _extend(existing: pl.DataFrame, rows: pl.DataFrame, *, source: str) -> pl.DataFrame:
    """Validate ``rows`` against themselves and ``existing``; the first broken rule names its row."""
    known_ids = pl.concat([existing["id"], rows["id"].drop_nulls()])
    known_names = pl.concat([existing["name"], rows["name"].drop_nulls()]).str.to_lowercase()
    checked = rows.with_columns(
        expected_parent=pl.col("id").str.extract(r"^(.*)/[^/]+$"),
        half_life_parsed=pl.col("half_life_days").cast(pl.Int32, strict=False),
        sensitive_parsed=pl.col("sensitive")
        .str.to_lowercase()
        .replace_strict({"true": True, "false": False}, default=None, return_dtype=pl.Boolean),
    )
    row_id = pl.col("id")
    _refuse(checked, source, "INVALID_ID", row_id.is_null(), "topic id is empty")
    _refuse(
        checked,
        source,
        "INVALID_ID",
        ~row_id.str.contains(_SLUG_PATH),
        "topic id {id!r} is not a slug path like 'sports/football'",
    )
    _refuse(checked, source, "EMPTY_NAME", pl.col("name").is_null(), "topic {id!r} has no name")
    _refuse(
        checked,
        source,
        "DUPLICATE_ID",
        row_id.is_in(existing["id"].implode()),
        "topic id {id!r} conflicts with an existing topic",
    )
    _refuse(checked, source, "DUPLICATE_ID", row_id.is_duplicated(), "topic id {id!r} appears twice")
    _refuse(
        checked,
        source,
        "PARENT_MISMATCH",
        pl.col("parent").ne_missing(pl.col("expected_parent")),
        "topic {id!r} must have the id's prefix as parent (empty for a tier-1 topic)",
    )
    _refuse(
        checked,
        source,
        "MISSING_PARENT",
        pl.col("parent").is_not_null() & ~pl.col("parent").is_in(known_ids.implode()),
        "parent {parent!r} of topic {id!r} does not exist",
    )
    _refuse(
        checked,
        source,
        "DUPLICATE_NAME",
        pl.col("name").str.to_lowercase().is_in(known_names.filter(known_names.is_duplicated()).implode()),
        "topic name of {id!r} is already used by another topic (names resolve page categories)",
    )
    _refuse(
        checked,
        source,
        "INVALID_HALF_LIFE",
        pl.col("half_life_days").is_not_null()
        & pl.col("half_life_parsed").is_null().or_(pl.col("half_life_parsed") <= 0),
        "half_life_days of {id!r} must be a positive whole number of days",
    )
    _refuse(
        checked,
        source,
        "INVALID_HALF_LIFE",
        pl.col("parent").is_null() & pl.col("half_life_days").is_null(),
        "tier-1 topic {id!r} needs its own half_life_days",
    )
    _refuse(
        checked,
        source,
        "INVALID_SENSITIVE",
        pl.col("sensitive").is_not_null() & pl.col("sensitive_parsed").is_null(),
        "sensitive of {id!r} must be true, false or blank",
    )
    return _inherit(existing, checked)


def _refuse(rows: pl.DataFrame, source: str, code: str, broken: pl.Expr, message: str) -> None:
    first = rows.filter(broken.fill_null(value=True)).head(1)
    if first.height:
        row = first.row(0, named=True)
        raise TaxonomyError(code, message.format(**row), source=source, row=row[_ROW])


def _inherit(existing: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
    """Fill blank half-lives and sensitivity from the parent, one tier at a time (at most a handful)."""
    pending = rows.select(
        "id",
        "parent",
        "name",
        pl.col("half_life_parsed").alias("half_life_days"),
        pl.col("sensitive_parsed").alias("sensitive"),
        depth=pl.col("id").str.count_matches("/"),
        order=pl.col(_ROW),
    )
    done: list[pl.DataFrame] = []
    for depth in pending["depth"].unique().sort().to_list():
        parents = pl.concat([existing, *(level.drop("order") for level in done)], how="vertical").select(
            pl.col("id").alias("parent"),
            pl.col("half_life_days").alias("parent_half_life"),
            pl.col("sensitive").alias("parent_sensitive"),
        )
        level = (
            pending.filter(pl.col("depth") == depth)
            .join(parents, on="parent", how="left", maintain_order="left")
            .select(
                "id",
                "parent",
                "name",
                pl.col("half_life_days").fill_null(pl.col("parent_half_life")).cast(pl.Int32),
                (pl.col("sensitive").fill_null(value=False) | pl.col("parent_sensitive").fill_null(value=False)).alias(
                    "sensitive"
                ),
                "order",
            )
        )
        done.append(level)
    added = pl.concat(done, how="vertical").sort("order").drop("order")
    return pl.concat([existing, added], how="vertical")
