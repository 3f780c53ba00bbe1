"""A synthetic, seeded population of people and their events, for demos, tests and benchmarks.

Nothing in it is real: emails use the reserved ``example.*`` domains, phones come from the French
regulator's numbers reserved for fiction (ARCEP: 01 99 00, 02 61 91, 03 53 01, 04 65 71, 05 36 49),
names from a short built-in list. The shape is what exercises the server: heavy-tailed activity,
a weekly rhythm, every channel, interests concentrated on a few topics per person (so they can be
learned), anonymous devices that later log in (so identities can be merged), partner pseudonyms,
consent withdrawn part-way, and about 0.5 % deliberately broken records (listed in ``defects``).

Everything is drawn per person or per event as whole numpy/Polars columns; the only Python loops
run over channels or defect kinds, never over records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from privacy.purposes import Purpose
from server.demo.vocabulary import (
    ATTRIBUTES_SCHEMA,
    CAMPAIGNS,
    CATEGORY_TYPES,
    CHANNEL_SHARE,
    CHANNELS,
    CONSENT_CHANGES_SCHEMA,
    DEFECT_KINDS,
    DEFECTS_SCHEMA,
    EVENT_TYPES,
    EVENTS_SCHEMA,
    FICTION_PHONE_PREFIXES,
    FIRST_NAMES,
    GENDERS,
    HOUR_WEIGHT,
    LAST_NAMES,
    PARTNERS,
    PURPOSES,
    REGION_SHARE,
    REGIONS,
    RESERVED_EMAIL_DOMAINS,
    TOPICLESS_TYPES,
    TYPE_MIX,
    UNKNOWN_EVENT_TYPES,
    UNKNOWN_TOPICS,
    WEEKDAY_WEIGHT,
)
from server.taxonomy import Taxonomy

__all__ = [
    "ATTRIBUTES_SCHEMA",
    "CHANNELS",
    "CONSENT_CHANGES_SCHEMA",
    "DEFECTS_SCHEMA",
    "EVENTS_SCHEMA",
    "EVENT_TYPES",
    "PARTNERS",
    "RESERVED_EMAIL_DOMAINS",
    "DemoPopulation",
    "Progress",
    "generate_population",
]

Progress = Callable[[str, float], None]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

_MEAN_EVENTS_PER_PERSON: Final = 50.0
_ACTIVITY_SIGMA: Final = 1.0
_DEFECT_SHARE: Final = 0.005
_PHONE_POOL: Final = 10_000 * len(FICTION_PHONE_PREFIXES)
_US_PER_DAY: Final = 86_400_000_000
_US_PER_HOUR: Final = 3_600_000_000


@dataclass(frozen=True, eq=False, slots=True)
class DemoPopulation:
    """Frames in the shapes of ``EVENTS_SCHEMA`` and friends; ``defects`` says which events are broken."""

    events: pl.DataFrame
    attributes: pl.DataFrame
    consent_changes: pl.DataFrame
    defects: pl.DataFrame


def generate_population(
    *,
    people: int = 20_000,
    days: int = 180,
    seed: int = 7,
    end: datetime,
    taxonomy: Taxonomy,
    progress: Progress | None = None,
) -> DemoPopulation:
    """Deterministic in ``seed``: the same arguments give identical frames (about 50 events a person)."""
    if people < 1 or days < 1:
        raise ValueError("people and days must be positive")
    if end.tzinfo is None or end.utcoffset() is None:
        raise ValueError("end must be timezone-aware")
    report = progress or _no_progress
    rng = np.random.default_rng(seed)
    start = end - timedelta(days=days)
    folk = _draw_people(rng, people, start=start)
    report("people", 0.1)
    skeleton = _draw_event_skeleton(rng, folk, days=days, start=start)
    report("timestamps", 0.3)
    events = _dress_events(rng, folk, skeleton, taxonomy, end=end)
    report("events", 0.8)
    consent_changes = _consent_changes(folk, skeleton)
    defects = events.filter(pl.col("_defect").is_not_null()).select("message_id", defect="_defect")
    report("done", 1.0)
    return DemoPopulation(
        # In time order, as real event exports are: later consent statements come later in the file.
        events=events.select(EVENTS_SCHEMA.names()).sort("timestamp", "message_id", maintain_order=True),
        attributes=folk.attributes,
        consent_changes=consent_changes,
        defects=defects,
    )


def _no_progress(stage: str, fraction: float) -> None:
    """Progress is optional; this keeps the call sites free of ``if progress``."""


@dataclass(frozen=True, slots=True)
class _People:
    """Per-person draws: arrays indexed by person, and the declared attributes frame."""

    attributes: pl.DataFrame
    events: IntArray
    window: FloatArray  # (people, 2): active span as fractions of the period
    logs_in: BoolArray
    login_fraction: FloatArray
    two_devices: BoolArray
    partner_member: BoolArray  # (people, 2)
    channel_cdf: FloatArray  # (people, channels)
    spend: FloatArray
    purposes: BoolArray  # (people, purposes)
    withdraws: BoolArray
    withdraw_fraction: FloatArray
    withdraw_by_gpc: BoolArray
    identifiers: pl.DataFrame  # user_id, email, phone, region, device_1, device_2, partner ids


def _draw_people(rng: np.random.Generator, people: int, *, start: datetime) -> _People:
    mu = np.log(_MEAN_EVENTS_PER_PERSON) - _ACTIVITY_SIGMA**2 / 2
    events = np.maximum(1, np.rint(rng.lognormal(mu, _ACTIVITY_SIGMA, people))).astype(np.int64)

    lifecycle = rng.choice(3, size=people, p=[0.6, 0.2, 0.2])  # steady, joined late, lapsed
    window = np.column_stack([np.zeros(people), np.ones(people)])
    window[lifecycle == 1, 0] = rng.uniform(0.2, 0.9, size=int((lifecycle == 1).sum()))
    window[lifecycle == 2, 1] = rng.uniform(0.1, 0.8, size=int((lifecycle == 2).sum()))

    logs_in = rng.random(people) < 0.8
    two_devices = logs_in & (events >= 6) & (rng.random(people) < 0.25)
    partner_member = rng.random((people, 2)) < np.array([0.30, 0.20])

    share = np.tile(CHANNEL_SHARE * 5.0, (people, 1))
    share[~logs_in, 2] = 0.0  # email and offline need a known customer
    share[~logs_in, 4] = 0.0
    share[~partner_member.any(axis=1), 5] = 0.0
    mix = np.stack([rng.gamma(np.maximum(share[:, c], 1e-9)) for c in range(len(CHANNELS))], axis=1)
    mix[share == 0.0] = 0.0
    channel_cdf = np.cumsum(mix / mix.sum(axis=1, keepdims=True), axis=1)

    purposes = rng.random((people, len(PURPOSES))) < np.array([0.88, 0.70, 0.55, 0.50])
    withdraws = (events >= 4) & (rng.random(people) < 0.04)
    has_phone = rng.random(people) < 0.6

    first = rng.integers(0, len(FIRST_NAMES), people)
    last = rng.integers(0, len(LAST_NAMES), people)
    customer_number = rng.choice(90_000_000, size=people, replace=False) + 10_000_000
    domain = rng.integers(0, len(RESERVED_EMAIL_DOMAINS), people)
    phone_slot = rng.choice(_PHONE_POOL, size=people, replace=people > _PHONE_POOL)
    region = rng.choice(len(REGIONS), size=people, p=REGION_SHARE / REGION_SHARE.sum())
    birth_year = np.clip(np.rint(rng.normal(1983, 14, people)), 1935, start.year - 16).astype(np.int32)
    gender = rng.choice(4, size=people, p=[0.49, 0.47, 0.01, 0.03])  # the last one: not declared
    alpha_number = rng.choice(900_000_000, size=people, replace=False) + 100_000_000

    names = pl.DataFrame(
        {
            "first": pl.Series(FIRST_NAMES).gather(first),
            "last": pl.Series(LAST_NAMES).gather(last),
            "number": customer_number,
            "domain": pl.Series(RESERVED_EMAIL_DOMAINS).gather(domain),
            "phone_slot": phone_slot,
            "has_phone": has_phone,
            "region": pl.Series(REGIONS).gather(region),
            "gender": pl.Series([*GENDERS, None], dtype=pl.String).gather(gender),
            "birth_year": birth_year,
            "alpha_number": alpha_number,
            "alpha": partner_member[:, 0],
            "beta": partner_member[:, 1],
        }
    )
    identifiers = names.select(
        user_id=pl.format("cus_{}", "number"),
        email=pl.format("{}.{}.{}@{}", "first", "last", "number", "domain"),
        phone=pl.when("has_phone").then(
            pl.format(
                "{}{}",
                pl.Series(FICTION_PHONE_PREFIXES).gather(names["phone_slot"] // 10_000 % 5),
                (pl.col("phone_slot") % 10_000).cast(pl.String).str.zfill(4),
            )
        ),
        region="region",
        device_1=_uuid4(rng, people),
        malformation=rng.integers(0, 4, people),
        device_2=pl.when(pl.lit(two_devices)).then(_uuid4(rng, people)),
        alpha_id=pl.when("alpha").then(pl.format("A{}", "alpha_number")),
        beta_id=pl.when("beta").then(_uuid4(rng, people).str.replace_all("-", "", literal=True)),
    ).with_columns(email_shouted=pl.col("email").str.to_uppercase(), email_malformed=_malformed(pl.col("email")))
    attributes = pl.concat(
        [
            identifiers.select("user_id", "email", "phone"),
            names.select(
                first_name=pl.col("first").str.to_titlecase(),
                last_name=pl.col("last").str.to_titlecase(),
                birth_year="birth_year",
                gender="gender",
                region="region",
            ),
        ],
        how="horizontal",
    )
    return _People(
        attributes=attributes.cast(ATTRIBUTES_SCHEMA),
        events=events,
        window=window,
        logs_in=logs_in,
        login_fraction=rng.uniform(0.05, 0.6, people),
        two_devices=two_devices,
        partner_member=partner_member,
        channel_cdf=channel_cdf,
        spend=rng.lognormal(0.0, 0.5, people),
        purposes=purposes,
        withdraws=withdraws,
        withdraw_fraction=rng.uniform(0.3, 0.8, people),
        withdraw_by_gpc=rng.random(people) < 0.5,
        identifiers=identifiers,
    )


@dataclass(frozen=True, slots=True)
class _Skeleton:
    """Per-event person index and time, sorted by person then time, with each event's rank."""

    person: IntArray
    timestamp_us: IntArray
    rank: IntArray
    first_event: IntArray  # per person: index of their first event
    login_rank: IntArray  # per person: rank of the event that logs in (huge if never)
    withdraw_rank: IntArray  # per person: first rank without (full) consent (huge if never)


def _draw_event_skeleton(rng: np.random.Generator, folk: _People, *, days: int, start: datetime) -> _Skeleton:
    """Times follow the weekly rhythm inside each person's active window, drawn by inverse CDF."""
    people = folk.events.size
    person = np.repeat(np.arange(people, dtype=np.int64), folk.events)
    total = person.size
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    calendar_days = days + 1  # the window's first and last days are partial
    weekday = (midnight.weekday() + np.arange(calendar_days)) % 7
    day_cdf = np.cumsum(WEEKDAY_WEIGHT[weekday])
    day_cdf /= day_cdf[-1]
    low, high = folk.window[person, 0], folk.window[person, 1]
    day = np.searchsorted(day_cdf, low + rng.random(total) * (high - low), side="right")
    day = np.minimum(day, calendar_days - 1)
    hour = rng.choice(24, size=total, p=HOUR_WEIGHT / HOUR_WEIGHT.sum())
    within_hour = rng.integers(0, _US_PER_HOUR // 1000, size=total) * 1000  # millisecond precision
    start_us = _epoch_us(start)
    span_us = days * _US_PER_DAY
    offset = _epoch_us(midnight) + day * _US_PER_DAY + hour * _US_PER_HOUR + within_hour - start_us
    timestamp_us = start_us + np.mod(offset, span_us)  # fold the partial days' overhang into the window

    order = np.lexsort((timestamp_us, person))
    timestamp_us = timestamp_us[order]
    first_event = np.concatenate([[0], np.cumsum(folk.events)[:-1]])
    rank = np.arange(total, dtype=np.int64) - first_event[person]
    never = np.iinfo(np.int64).max
    login_rank = np.where(folk.logs_in, (folk.login_fraction * folk.events).astype(np.int64), never)
    withdrawal = np.clip((folk.withdraw_fraction * folk.events).astype(np.int64), 1, np.maximum(folk.events - 1, 1))
    withdraw_rank = np.where(folk.withdraws, withdrawal, never)
    return _Skeleton(person, timestamp_us, rank, first_event, login_rank, withdraw_rank)


def _dress_events(
    rng: np.random.Generator, folk: _People, skeleton: _Skeleton, taxonomy: Taxonomy, *, end: datetime
) -> pl.DataFrame:
    """Per-event draws as numbers, put in time order, then turned into strings in one ``select``.

    Broken records keep their place in the stream (a future timestamp arrives among its peers).
    """
    person, rank = skeleton.person, skeleton.rank
    total = person.size
    identified = rank >= skeleton.login_rank[person]
    login_event = rank == skeleton.login_rank[person]

    cdf = folk.channel_cdf[person]
    channel = (rng.random(total)[:, None] > cdf).sum(axis=1).clip(0, len(CHANNELS) - 1)
    web, app, email_ch, ads, offline, _ = range(len(CHANNELS))
    channel[~identified & np.isin(channel, [email_ch, offline])] = web
    channel[login_event & ~np.isin(channel, [web, app])] = web

    event_type = np.empty(total, dtype=np.int64)
    for code, name in enumerate(CHANNELS):
        mask = channel == code
        kinds, weights = zip(*TYPE_MIX[name].items(), strict=True)
        picks = rng.choice(len(kinds), size=int(mask.sum()), p=np.array(weights) / sum(weights))
        event_type[mask] = np.array([EVENT_TYPES.index(k) for k in kinds])[picks]
    signs_up = login_event & (rng.random(total) < 0.4)
    event_type[signs_up] = EVENT_TYPES.index("signup")
    event_type[login_event & ~signs_up] = EVENT_TYPES.index("page_view")

    topic_count = np.where(rng.random(total) < 0.65, 1, 2)
    topic_count[np.isin(event_type, [EVENT_TYPES.index(t) for t in TOPICLESS_TYPES])] = 0
    popularity = _topic_popularity(rng, taxonomy)
    preferred = rng.choice(len(taxonomy), size=(folk.events.size, 4), p=popularity)
    first_topic = _draw_topics(rng, preferred, person, popularity)
    second_topic = _draw_topics(rng, preferred, person, popularity)

    on_second_device = folk.two_devices[person] & (
        (channel == app)
        | ((channel == web) & (rng.random(total) < 0.15))
        | ((channel == ads) & (rng.random(total) < 0.5))
    )
    uses_partner_beta = folk.partner_member[person, 1] & (~folk.partner_member[person, 0] | (rng.random(total) < 0.4))
    withdrawn = rank >= skeleton.withdraw_rank[person]
    by_gpc = withdrawn & folk.withdraw_by_gpc[person]
    # A preference-centre withdrawal empties the purposes; Global Privacy Control withdraws advertising.
    held = folk.purposes[person] & ~(withdrawn & ~by_gpc)[:, None]
    held[:, PURPOSES.index(Purpose.ADVERTISING.value)] &= ~by_gpc
    purpose_code = held.astype(np.int64) @ (1 << np.arange(len(PURPOSES)))
    amount = rng.lognormal(np.log(35.0), 0.75, total) * folk.spend[person] * np.where(channel == offline, 1.4, 1.0)
    defect = np.full(total, -1, dtype=np.int64)
    broken = rng.choice(total, size=round(total * _DEFECT_SHARE), replace=False)
    defect[broken] = rng.integers(0, len(DEFECT_KINDS), broken.size)
    defect_pick = rng.integers(0, 4, total)
    timestamp_us = np.where(
        defect == DEFECT_KINDS.index("future_timestamp"),
        _epoch_us(end) + rng.integers(_US_PER_HOUR // 1000, 30 * _US_PER_DAY // 1000, total) * 1000,
        skeleton.timestamp_us,
    )
    unknown_topic = np.where(defect == DEFECT_KINDS.index("unknown_topic"), defect_pick, -1)
    in_time_order = np.argsort(skeleton.timestamp_us, kind="stable")
    draws = pl.DataFrame(
        {
            name: values[in_time_order]
            for name, values in {
                "person": person,
                "ts": timestamp_us,
                "channel": channel,
                "event_type": event_type,
                "identified": identified,
                "login_event": login_event,
                "second_device": on_second_device,
                "beta": uses_partner_beta,
                "has_topic": topic_count >= 1,
                "topic_1": first_topic,
                "category_form": rng.integers(0, 4, total),
                "email_roll": rng.random(total),
                "phone_roll": rng.random(total),
                "region_roll": rng.random(total),
                "other_region": rng.integers(0, len(REGIONS), total),
                "campaign_pick": rng.integers(0, 6, total),
                "amount": np.round(amount, 2),
                "purpose_code": purpose_code,
                "gpc": by_gpc,
                "defect": defect,
                "defect_pick": defect_pick,
            }.items()
        }
    ).with_columns(
        message_id=_uuid4(rng, total),
        topics=_topic_lists(
            first_topic[in_time_order],
            second_topic[in_time_order],
            topic_count[in_time_order],
            unknown_topic[in_time_order],
            taxonomy.frame["id"],
        ),
    )
    people = folk.identifiers.with_row_index("person").with_columns(pl.col("person").cast(pl.Int64))
    return draws.join(people, on="person", how="left", maintain_order="left").select(_event_columns(taxonomy))


def _event_columns(taxonomy: Taxonomy) -> list[pl.Expr]:
    """Which identifiers each channel carries is the crux for identity resolution; see module doc."""
    channel = _lookup(CHANNELS, pl.col("channel"))
    defect = pl.col("defect")
    event = (
        pl.when(defect == DEFECT_KINDS.index("unknown_event_type"))
        .then(_lookup(UNKNOWN_EVENT_TYPES, pl.col("defect_pick")))
        .otherwise(_lookup(EVENT_TYPES, pl.col("event_type")))
    )
    ch = pl.col("channel")
    web, app, email_ch, ads, offline, partner_ch = range(len(CHANNELS))
    topic_ids, topic_names = taxonomy.frame["id"], taxonomy.frame["name"]
    name_1 = pl.lit(topic_names).gather(pl.col("topic_1"))
    category = pl.when(_is_type(*CATEGORY_TYPES) & ch.is_in([web, app, partner_ch]) & pl.col("has_topic")).then(
        pl.when(pl.col("category_form") == 0)
        .then(pl.lit(topic_ids).gather(pl.col("topic_1")))
        .when(pl.col("category_form") == 1)
        .then(name_1.str.to_lowercase())
        .otherwise(name_1)
    )
    email_on = (
        (ch.eq(email_ch))
        | (ch.is_in([web, app]) & pl.col("identified") & (pl.col("login_event") | _is_type("purchase", "signup")))
        | (ch.is_in([web, app]) & pl.col("identified") & (pl.col("email_roll") < 0.08))
        | (ch.eq(partner_ch) & (pl.col("email_roll") < 0.35))
    )
    shouted = pl.col("email_roll") > 0.97  # a few arrive in capitals: normalization must cope
    phone_on = pl.col("phone").is_not_null() & (
        (ch.eq(offline) & (pl.col("phone_roll") < 0.4))
        | (ch.is_in([web, app]) & pl.col("identified") & _is_type("purchase") & (pl.col("phone_roll") < 0.3))
    )
    region_share = pl.when(ch.eq(offline)).then(1.0).when(ch.is_in([web, app])).then(0.68).when(ch.eq(ads)).then(0.4)
    purpose_sets = pl.Series(
        [[p for bit, p in enumerate(PURPOSES) if code >> bit & 1] for code in range(1 << len(PURPOSES))],
        dtype=pl.List(pl.String),
    )
    return [
        pl.col("message_id"),
        event.alias("event"),
        channel.alias("channel"),
        pl.col("ts").cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("timestamp"),
        pl.when(pl.col("identified") & ch.is_in([web, app, email_ch, offline])).then("user_id").alias("user_id"),
        pl.when(ch.is_in([web, app, ads]))
        .then(pl.when("second_device").then("device_2").otherwise("device_1"))
        .alias("anonymous_id"),
        pl.when(defect == DEFECT_KINDS.index("malformed_email"))
        .then("email_malformed")
        .when(email_on)
        .then(pl.when(shouted).then("email_shouted").otherwise("email"))
        .alias("email"),
        pl.when(phone_on).then("phone").alias("phone"),
        pl.when(ch.eq(partner_ch))
        .then(pl.when("beta").then(pl.lit(PARTNERS[1])).otherwise(pl.lit(PARTNERS[0])))
        .alias("partner"),
        pl.when(ch.eq(partner_ch)).then(pl.when("beta").then("beta_id").otherwise("alpha_id")).alias("partner_user_id"),
        pl.col("topics"),
        category.alias("category"),
        pl.when(_is_type("purchase")).then("amount").alias("amount"),
        pl.when(_is_type("purchase")).then(pl.lit("EUR")).alias("currency"),
        pl.when(ch.eq(email_ch))
        .then(_lookup(CAMPAIGNS["email"], pl.col("campaign_pick")))
        .when(ch.eq(ads))
        .then(_lookup(CAMPAIGNS["ads"], pl.col("campaign_pick")))
        .alias("campaign"),
        pl.when(pl.col("region_roll") < region_share * 0.96)
        .then("region")
        .when(pl.col("region_roll") < region_share)
        .then(_lookup(REGIONS, pl.col("other_region")))
        .alias("region"),
        pl.lit(purpose_sets).gather(pl.col("purpose_code")).alias("consent_purposes"),
        pl.col("gpc"),
        pl.when(defect >= 0).then(_lookup(DEFECT_KINDS, defect.clip(0))).alias("_defect"),
    ]


def _is_type(*names: str) -> pl.Expr:
    return pl.col("event_type").is_in([EVENT_TYPES.index(name) for name in names])


def _malformed(email: pl.Expr) -> pl.Expr:
    """One broken spelling per person: no "@", a doubled "@", no domain, or a space."""
    return (
        pl.when(pl.col("malformation") == 0)
        .then(email.str.replace("@", "", literal=True))
        .when(pl.col("malformation") == 1)
        .then(email.str.replace("@", "@@", literal=True))
        .when(pl.col("malformation") == 2)
        .then(email.str.replace(r"@.*$", "@"))
        .otherwise(email.str.replace(".", " ", literal=True))
    )


def _topic_popularity(rng: np.random.Generator, taxonomy: Taxonomy) -> FloatArray:
    """Zipf-like over a seeded order, so a few topics are popular; special categories are rarer."""
    rank = rng.permutation(len(taxonomy))
    weight = 1.0 / (rank + 10.0) ** 0.9
    weight[taxonomy.frame["sensitive"].to_numpy()] *= 0.3
    normalized: FloatArray = weight / weight.sum()
    return normalized


def _draw_topics(rng: np.random.Generator, preferred: IntArray, person: IntArray, popularity: FloatArray) -> IntArray:
    """Three in four topics come from the person's own favourites: that is the learnable signal."""
    total = person.size
    slot = rng.choice(preferred.shape[1], size=total, p=[0.45, 0.25, 0.18, 0.12])
    background = rng.choice(popularity.size, size=total, p=popularity)
    drawn: IntArray = np.where(rng.random(total) < 0.75, preferred[person, slot], background)
    return drawn


def _topic_lists(
    first: IntArray, second: IntArray, count: IntArray, unknown: IntArray, topic_ids: pl.Series
) -> pl.Series:
    """Ragged lists built from offsets in Arrow: ten times faster than ``concat_list`` + ``drop_nulls``.

    ``unknown`` (an index into the unknown topics, or -1) appends a topic the taxonomy lacks.
    """
    width = np.stack([count >= 1, (count >= 2) & (second != first), unknown >= 0], axis=1)
    offsets = np.zeros(count.size + 1, dtype=np.int32)
    np.cumsum(width.sum(axis=1), out=offsets[1:])
    chosen = np.stack([first, second, topic_ids.len() + unknown], axis=1)[width]
    vocabulary = pl.concat([topic_ids, pl.Series(UNKNOWN_TOPICS, dtype=pl.String)])
    values = vocabulary.to_arrow().take(pa.array(chosen))
    return pl.Series("topics", pa.ListArray.from_arrays(pa.array(offsets), values), dtype=pl.List(pl.String))


def _lookup(values: Sequence[str], codes: pl.Expr) -> pl.Expr:
    """Small integer codes to their strings: draws stay numeric until the last step."""
    return pl.lit(pl.Series(values, dtype=pl.String)).gather(codes)


def _uuid4(rng: np.random.Generator, count: int) -> pl.Series:
    """Random (version 4) UUID strings from the seeded generator, built as a byte matrix."""
    raw = rng.integers(0, 256, size=(count, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    text = np.full((count, 36), ord("-"), dtype=np.uint8)
    hex_positions = [i for i in range(36) if i not in (8, 13, 18, 23)]
    text[:, hex_positions[0::2]] = digits[raw >> 4]
    text[:, hex_positions[1::2]] = digits[raw & 0x0F]
    return pl.Series(text.view("S36").ravel()).cast(pl.String)


def _epoch_us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=moment.tzinfo)) // timedelta(microseconds=1)


def _consent_changes(folk: _People, skeleton: _Skeleton) -> pl.DataFrame:
    """The ledger view of the same story the events tell: banner grants, then some withdrawals.

    Grants are recorded against the first device, a second before the first event; a withdrawal
    sits between the last event with full consent and the first without, and names the customer
    id only if the person had logged in by then.
    """
    first = skeleton.first_event
    never = np.iinfo(np.int64).max
    withdraw_at = np.where(folk.withdraws, first + np.where(folk.withdraws, skeleton.withdraw_rank, 0), 0)
    midpoint = (skeleton.timestamp_us[withdraw_at - folk.withdraws] + skeleton.timestamp_us[withdraw_at]) // 2
    people = folk.identifiers.select("user_id", "device_1").with_columns(
        granted_at=skeleton.timestamp_us[first] - 1_000_000,
        withdraws=folk.withdraws,
        by_gpc=folk.withdraw_by_gpc,
        withdrawn_at=midpoint,
        known=folk.withdraws & (skeleton.withdraw_rank >= skeleton.login_rank) & (skeleton.login_rank != never),
        held=pl.concat_list(
            [pl.when(pl.lit(folk.purposes[:, i])).then(pl.lit(p)) for i, p in enumerate(PURPOSES)]
        ).list.drop_nulls(),
    )
    grants = people.select(
        user_id=pl.lit(None, dtype=pl.String),
        anonymous_id="device_1",
        purpose="held",
        granted=pl.lit(value=True),
        timestamp="granted_at",
        source=pl.lit("consent-banner"),
    )
    withdrawals = people.filter("withdraws").select(
        user_id=pl.when("known").then("user_id"),
        anonymous_id="device_1",
        purpose=pl.when("by_gpc").then(pl.lit([Purpose.ADVERTISING.value])).otherwise("held"),
        granted=pl.lit(value=False),
        timestamp="withdrawn_at",
        source=pl.when("by_gpc").then(pl.lit("gpc")).otherwise(pl.lit("preference-center")),
    )
    return (
        pl.concat([grants, withdrawals], how="vertical")
        .explode("purpose")
        .drop_nulls("purpose")
        .with_columns(pl.col("timestamp").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
        .sort("timestamp", "anonymous_id", "purpose")
        .select(CONSENT_CHANGES_SCHEMA.names())
        .cast(CONSENT_CHANGES_SCHEMA)
    )
