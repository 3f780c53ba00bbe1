"""Validation and normalization of a batch, in columns.

Every rule is a Polars expression over the whole batch; the first rule a record breaks becomes
its reject code. Identifiers come out normalized (still in memory only; they are hashed next),
topics are checked against the taxonomy, and labels that could carry free text are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from privacy.identifiers import IdentifierKind, NormalizationRules, normalized_expr
from privacy.purposes import Purpose
from server.ingest.vocabulary import CHANNELS, EVENT_TYPES, RejectCode
from server.taxonomy.taxonomy import Taxonomy

ROW = "row"
REJECT = "reject_code"
LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
MESSAGE_ID_PATTERN = r"^[\x21-\x7e]{1,128}$"

# (raw column, normalized column, kind, reject code)
IDENTIFIER_COLUMNS: tuple[tuple[str, str, IdentifierKind, RejectCode], ...] = (
    ("email", "email_n", IdentifierKind.EMAIL, RejectCode.INVALID_EMAIL),
    ("phone", "phone_n", IdentifierKind.PHONE, RejectCode.INVALID_PHONE),
    ("anonymous_id", "device_n", IdentifierKind.DEVICE_ID, RejectCode.INVALID_DEVICE_ID),
    ("user_id", "customer_n", IdentifierKind.CUSTOMER_ID, RejectCode.INVALID_CUSTOMER_ID),
    ("partner_user_id", "partner_user_n", IdentifierKind.PARTNER_USER_ID, RejectCode.INVALID_PARTNER_USER_ID),
)
NORMALIZED_COLUMNS = tuple(normalized for _raw, normalized, _kind, _code in IDENTIFIER_COLUMNS)


@dataclass(frozen=True, slots=True)
class JunkIdentifiers:
    """Values that many unrelated people share (test addresses, placeholder device ids).

    They are dropped from the record rather than used, because linking on them would merge
    strangers into one profile.
    """

    emails: frozenset[str] = frozenset(
        {
            "test@test.com",
            "test@example.com",
            "noreply@example.com",
            "no-reply@example.com",
            "a@a.com",
            "null@null.com",
            "none@none.com",
            "email@email.com",
        }
    )
    device_id_pattern: str = r"^(?:[0-]+|[f-]+|unknown|null|undefined|none)$"
    customer_ids: frozenset[str] = frozenset({"0", "-1", "null", "none", "undefined", "unknown", "guest", "anonymous"})


@dataclass(frozen=True, slots=True)
class ValidationContext:
    now: datetime
    rules: NormalizationRules
    taxonomy: Taxonomy
    partner_ids: Mapping[str, int]
    forced_partner_id: int | None = None
    future_skew: timedelta = timedelta(minutes=5)
    retention: timedelta = timedelta(days=400)
    junk: JunkIdentifiers = field(default_factory=JunkIdentifiers)
    extra_event_types: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ValidatedBatch:
    """``frame`` keeps every record (``reject_code`` null for valid ones); counts are for the result."""

    frame: pl.DataFrame
    dropped_topics: int
    dropped_labels: int
    junk_identifiers: int


def validate(events: pl.DataFrame, context: ValidationContext) -> ValidatedBatch:
    frame = events.with_row_index(ROW).with_columns(_partner_id(context))
    junk = _junk_masks(context.junk)
    frame = frame.with_columns(
        junk_count=pl.sum_horizontal([mask.cast(pl.UInt8) for mask in junk.values()]),
        **{column: pl.when(mask).then(None).otherwise(pl.col(column)) for column, mask in junk.items()},
    )
    for raw, normalized, kind, _code in IDENTIFIER_COLUMNS:
        frame = normalize_distinct(frame, raw, normalized, kind, context.rules)
    category_topic = context.taxonomy.category_topic(pl.col("category"))
    with_category = pl.concat_list(pl.col("topics").fill_null(pl.lit([], dtype=pl.List(pl.String))), category_topic)
    topics = pl.when(category_topic.is_null()).then(pl.col("topics")).otherwise(with_category)
    split = context.taxonomy.split_known(topics)
    unknown_category = pl.col("category").is_not_null() & category_topic.is_null()
    frame = frame.with_columns(
        topics_known=split.known.list.unique(maintain_order=True),
        dropped_topics=split.unknown_count + unknown_category.cast(pl.UInt32),
        campaign=_label_or_null(pl.col("campaign")),
        region=_label_or_null(pl.col("region")),
        dropped_labels=(
            _dropped_label(pl.col("campaign")).cast(pl.UInt8) + _dropped_label(pl.col("region")).cast(pl.UInt8)
        ),
    ).with_columns(_reject_code(context).alias(REJECT))
    totals = frame.select(pl.col("dropped_topics").sum(), pl.col("dropped_labels").sum(), pl.col("junk_count").sum())
    dropped_topics, dropped_labels, junk_count = totals.row(0)
    return ValidatedBatch(frame, int(dropped_topics or 0), int(dropped_labels or 0), int(junk_count or 0))


def normalize_distinct(
    frame: pl.DataFrame, raw: str, normalized: str, kind: IdentifierKind, rules: NormalizationRules
) -> pl.DataFrame:
    """Normalize each distinct value once: a person's identifiers repeat across their events."""
    distinct = frame.select(pl.col(raw).drop_nulls().unique())
    mapping = distinct.with_columns(normalized_expr(kind, pl.col(raw), rules).alias(normalized))
    return frame.join(mapping, on=raw, how="left", maintain_order="left")


def _partner_id(context: ValidationContext) -> pl.Expr:
    if context.forced_partner_id is not None:
        return pl.lit(context.forced_partner_id, dtype=pl.Int64).alias("partner_id")
    return (
        pl.col("partner")
        .replace_strict(dict(context.partner_ids), default=None, return_dtype=pl.Int64)
        .alias("partner_id")
    )


def _junk_masks(junk: JunkIdentifiers) -> dict[str, pl.Expr]:
    def stripped(name: str) -> pl.Expr:
        return pl.col(name).str.strip_chars().str.to_lowercase()

    return {
        "email": stripped("email").is_in(list(junk.emails)).fill_null(value=False),
        "anonymous_id": stripped("anonymous_id").str.contains(junk.device_id_pattern).fill_null(value=False),
        "user_id": stripped("user_id").is_in(list(junk.customer_ids)).fill_null(value=False),
    }


def _label_or_null(column: pl.Expr) -> pl.Expr:
    return pl.when(column.str.contains(LABEL_PATTERN)).then(column).otherwise(None)


def _dropped_label(column: pl.Expr) -> pl.Expr:
    return column.is_not_null() & ~column.str.contains(LABEL_PATTERN).fill_null(value=False)


def _reject_code(context: ValidationContext) -> pl.Expr:
    """The first broken rule, in the order a sender would want to fix them."""
    event_types = sorted(EVENT_TYPES | context.extra_event_types)
    purposes = [purpose.value for purpose in Purpose]
    any_identifier = pl.any_horizontal([pl.col(column).is_not_null() for column in NORMALIZED_COLUMNS])
    amount = pl.col("amount")
    rules: list[tuple[pl.Expr, RejectCode]] = [
        (~pl.col("message_id").str.contains(MESSAGE_ID_PATTERN).fill_null(value=False), RejectCode.INVALID_MESSAGE_ID),
        (~pl.col("event").is_in(event_types).fill_null(value=False), RejectCode.UNKNOWN_EVENT_TYPE),
        (~pl.col("channel").is_in(sorted(CHANNELS)).fill_null(value=False), RejectCode.UNKNOWN_CHANNEL),
        (pl.col("timestamp").is_null(), RejectCode.INVALID_TIMESTAMP),
        (pl.col("timestamp") > pl.lit(context.now + context.future_skew), RejectCode.FUTURE_TIMESTAMP),
        (pl.col("timestamp") < pl.lit(context.now - context.retention), RejectCode.TOO_OLD),
        (pl.col("partner").is_not_null() & pl.col("partner_id").is_null(), RejectCode.UNKNOWN_PARTNER),
    ]
    for raw, normalized, _kind, code in IDENTIFIER_COLUMNS:
        rules.append((pl.col(raw).is_not_null() & pl.col(normalized).is_null(), code))
    rules += [
        (pl.col("partner_user_n").is_not_null() & pl.col("partner_id").is_null(), RejectCode.INVALID_PARTNER_USER_ID),
        (~any_identifier, RejectCode.NO_IDENTIFIER),
        (amount.is_not_null() & (amount.is_nan() | amount.is_infinite() | (amount < 0)), RejectCode.INVALID_AMOUNT),
        (amount.is_not_null() & pl.col("currency").is_null(), RejectCode.INVALID_AMOUNT),
        (
            pl.col("currency").is_not_null()
            & ~pl.col("currency").str.contains(CURRENCY_PATTERN).fill_null(value=False),
            RejectCode.INVALID_CURRENCY,
        ),
        (
            ~pl.col("consent_purposes")
            .fill_null(pl.lit([], dtype=pl.List(pl.String)))
            .list.eval(pl.element().is_in(purposes))
            .list.all(),
            RejectCode.UNKNOWN_PURPOSE,
        ),
    ]
    expression = pl.lit(None, dtype=pl.String)
    for condition, code in reversed(rules):
        expression = pl.when(condition.fill_null(value=False)).then(pl.lit(code.value)).otherwise(expression)
    return expression
