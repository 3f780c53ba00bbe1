"""Deterministic identity resolution for a batch, in columns.

Records and identifier hashes form a graph (a record links the identifiers it carries; an
existing identity links its hash to its subject). Each connected component is one person:
no subject yet means a new subject, one means that subject, several mean a merge. Guardrails
keep junk from fusing strangers: a cap on identifiers per type per subject, and a breaker that
refuses merges that would join too many subjects or identities at once.

A partner's records are resolved apart (``_partner_subjects``): their identifiers are nodes of
that partner's scope, so they never join our records' components, and they attach to at most
one existing subject, never merging anyone. Every identifier a partner sends is linked in its
scope (``identities.partner_id``), also one we link ourselves: the partner then finds the person
by all it sent and only by that, and which of them we knew does not show. Our own records never
follow a partner's links.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sqlalchemy.orm import Session

from privacy.identifiers import IdentifierKind
from server.frames.events import IDENTIFIER_COLUMNS, ROW
from server.privacy_kit import PrivacyKit
from server.storage.lookup import frame_where_in, select_where_in
from server.storage.tables import IdentityRow, SuppressionRow

EARLIEST = datetime.min.replace(tzinfo=UTC)
SUBJECT_ID_BITS = 63
# Which identifier decides a record's subject when a merge is refused: the most specific first.
KIND_PRIORITY = {
    IdentifierKind.CUSTOMER_ID.value: 0,
    IdentifierKind.EMAIL.value: 1,
    IdentifierKind.PHONE.value: 2,
    IdentifierKind.PARTNER_USER_ID.value: 3,
    IdentifierKind.DEVICE_ID.value: 4,
}


@dataclass(frozen=True, slots=True)
class IdentityGuardrails:
    max_per_kind: Mapping[str, int] = field(
        default_factory=lambda: {
            IdentifierKind.EMAIL.value: 5,
            IdentifierKind.PHONE.value: 5,
            IdentifierKind.DEVICE_ID.value: 50,
            IdentifierKind.CUSTOMER_ID.value: 3,
            IdentifierKind.PARTNER_USER_ID.value: 20,
        }
    )
    max_subjects_per_merge: int = 3
    max_identities_after_merge: int = 100


@dataclass(frozen=True, slots=True)
class Merge:
    winner: int
    losers: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Resolution:
    """``rows``: (row, subject_id) for every record that was resolved.

    ``ambiguous_rows``: partner records whose identifiers point at several of our subjects; they
    are attached to none.

    ``new_identities``: (subject_id, origin_subject_id, kind, key_version, pseudonym, partner_id),
    the rows ``identities`` gets.
    """

    rows: pl.DataFrame
    suppressed_rows: pl.Series
    ambiguous_rows: pl.Series
    new_subjects: list[int]
    new_identities: pl.DataFrame
    merges: list[Merge]
    refused_merges: int
    identity_limit_hits: int


def identifier_pairs(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per (record, identifier): kind, normalized value and scope (the record's partner, 0 if ours).

    Kind by kind in ``IDENTIFIER_COLUMNS`` order, records in order within a kind: identifier nodes
    are numbered by first appearance in this order. One unpivot, not a filter per kind: on a batch
    of 1,000 the fixed cost of each Polars operation is what counts. Every identifier of a
    partner's record is in that partner's scope, so it is a node apart from ours; only a partner
    user id is also hashed in that scope (``hash_identifiers``).
    """
    kind_of = {normalized: kind.value for _raw, normalized, kind in IDENTIFIER_COLUMNS}
    return (
        frame.lazy()
        .select(ROW, "partner_id", *kind_of)
        .unpivot(on=list(kind_of), index=[ROW, "partner_id"], variable_name="kind", value_name="value")
        .drop_nulls("value")
        .select(
            ROW,
            pl.col("kind").replace_strict(kind_of, return_dtype=pl.String),
            "value",
            pl.col("partner_id").fill_null(0).cast(pl.Int64).alias("scope"),
        )
        .collect(engine="in-memory")  # starts faster than the streaming engine on a batch's few rows
    )


def hash_identifiers(unique: pl.DataFrame, kit: PrivacyKit, key_version: int) -> pl.Series:
    """Digests for unique (kind, value, scope) rows, one bulk HMAC call per kind and scope."""
    digests: list[bytes | None] = [None] * unique.height
    indexed = unique.with_row_index("_i")
    for (kind, scope), group in indexed.group_by(["kind", "scope"]):
        values = group["value"].to_list()
        partner = int(scope) if kind == IdentifierKind.PARTNER_USER_ID.value else None
        hashed = kit.pseudonymizer.digest_many(IdentifierKind(kind), values, partner, key_version=key_version)
        for position, digest in zip(group["_i"].to_list(), hashed, strict=True):
            digests[position] = digest
    return pl.Series("digest", digests, dtype=pl.Binary)


def _match(
    session: Session, model: type[IdentityRow] | type[SuppressionRow], hashed: pl.DataFrame, columns: Sequence[str]
) -> pl.DataFrame:
    """The nodes of ``hashed`` stored in ``model`` (matched on kind, key version and digest), with ``columns``.

    One driver-level query by pseudonym for every kind and version (indexed by pseudonym alone);
    the kind and version are matched here.
    """
    found = select_where_in(
        session,
        f"SELECT {', '.join(['kind', 'key_version', 'pseudonym', *columns])} FROM {model.__tablename__}"
        " WHERE pseudonym {in}",
        hashed["digest"].unique().sort().to_list(),  # in key order: neighbouring index pages
    )
    schema = {"kind": pl.String, "key_version": pl.Int64, "digest": pl.Binary, **dict.fromkeys(columns, pl.Int64)}
    if not found:  # the usual answer for suppressions
        return pl.DataFrame(schema={"node": pl.UInt32, **dict.fromkeys(columns, pl.Int64)})
    return (
        pl.DataFrame(found, schema=schema, orient="row")
        .join(hashed.select("node", "kind", "key_version", "digest"), on=["kind", "key_version", "digest"])
        .select("node", *columns)
    )


@dataclass(frozen=True, slots=True)
class HashedIdentifiers:
    """Keyed hashes of a batch's identifiers under every key version: CPU work only, no database,
    so a file import computes them for the next chunk while the database stores this one."""

    pairs: pl.DataFrame  # identifier_pairs of the records hashed
    digests: pl.DataFrame  # (kind, value, scope, key_version, digest)


def hash_batch(frame: pl.DataFrame, kit: PrivacyKit) -> HashedIdentifiers:
    pairs = identifier_pairs(frame)
    unique = pairs.select("kind", "value", "scope").unique()
    return HashedIdentifiers(
        pairs,
        pl.concat(
            unique.with_columns(
                key_version=pl.lit(version, dtype=pl.Int64), digest=hash_identifiers(unique, kit, version)
            )
            for version in kit.pseudonymizer.versions
        ),
    )


Seniority = tuple[datetime, int, int]
"""(created_at, created_rank, subject id): smallest is most senior; see ``_seniority``."""


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """The expensive part of resolution, done once per batch: hashing and database lookups.

    What plans need of the known subjects is read here too, once for both plans of a batch:
    identities per kind and scope (``existing_per_kind``: the caps) and in our scope
    (``identity_counts``: the merge breaker), and how they rank as merge winners (``seniority``).
    A partner's links count only against its own caps, so it cannot fill a person's.
    """

    pairs: pl.DataFrame
    hashed_current: pl.DataFrame
    node_subject: pl.DataFrame  # our nodes linked in our scope: the edges of the graph
    partner_links: pl.DataFrame  # partners' nodes: (node, subject_id, ours, origin_subject_id), in our scope or theirs
    suppressed_rows: pl.Series
    node_count: int
    existing_per_kind: pl.DataFrame
    identity_counts: Mapping[int, int]
    seniority: Mapping[int, Seniority]


KNOWN_SCHEMA = pl.Schema(
    {
        "subject_id": pl.Int64(),
        "kind": pl.String(),
        "scope": pl.Int64(),
        "created_at": pl.Datetime("us", "UTC"),
        "created_rank": pl.Int64(),
    }
)


def prepare(
    session: Session, frame: pl.DataFrame, kit: PrivacyKit, hashed: HashedIdentifiers | None = None
) -> PreparedBatch:
    """Hash every identifier under every key version (or take ``hashed``) and find known and suppressed ones."""
    hashed = hashed or hash_batch(frame, kit)
    # The records of ``frame`` are among those hashed (duplicates of stored events are not).
    pairs = hashed.pairs.join(frame.select(ROW), on=ROW, how="semi", maintain_order="left")
    unique = pairs.select("kind", "value", "scope").unique(maintain_order=True).with_row_index("node")
    identifier = ["kind", "value", "scope"]
    hashed_all = unique.join(hashed.digests, on=identifier, how="left", maintain_order="left")
    if hashed_all["digest"].null_count() or hashed_all.height != unique.height * len(kit.pseudonymizer.versions):
        raise ValueError("the identifiers were hashed for another batch")
    pairs = pairs.join(unique, on=identifier, how="left").drop("value")
    suppressed_rows = pl.Series(ROW, [], dtype=pl.UInt32)
    suppressed_nodes = _match(session, SuppressionRow, hashed_all, [])["node"]
    if suppressed_nodes.len():
        suppressed_rows = pairs.filter(pl.col("node").is_in(suppressed_nodes.implode()))[ROW].unique()
        pairs = pairs.filter(~pl.col(ROW).is_in(suppressed_rows.implode()))
    matched = _match(session, IdentityRow, hashed_all, ["subject_id", "partner_id", "origin_subject_id"])
    links = _links_in_scope(matched, unique)
    ours = pl.col("scope") == 0
    node_subject = links.filter(ours).select("node", "subject_id").unique()
    known = _known_subjects(session, links["subject_id"].unique().sort().to_list())
    first_party = known.filter(ours)
    return PreparedBatch(
        pairs=pairs,
        hashed_current=hashed_all.filter(pl.col("key_version") == kit.pseudonymizer.current_version).drop("value"),
        node_subject=node_subject,
        partner_links=links.filter(~ours).select("node", "subject_id", "ours", "origin_subject_id"),
        suppressed_rows=suppressed_rows,
        node_count=unique.height,
        existing_per_kind=known.select("subject_id", "kind", "scope", "existing"),
        identity_counts=dict(first_party.group_by("subject_id").agg(pl.col("existing").sum()).iter_rows()),
        seniority=_seniority(first_party),
    )


def _links_in_scope(matched: pl.DataFrame, nodes: pl.DataFrame) -> pl.DataFrame:
    """(node, scope, subject_id, ours, origin_subject_id) for the stored links each node may follow.

    Our nodes follow our links only; a partner's follow ours and that partner's own, never
    another partner's. ``ours`` says which of the two a partner's node followed; the origin is the
    link's (``server.identity.split``), which a partner's link of the same identifier takes over.
    """
    return (
        matched.join(nodes.select("node", "scope"), on="node", how="inner")
        .with_columns(ours=pl.col("partner_id").is_null())
        .filter(pl.col("ours") | (pl.col("partner_id") == pl.col("scope")))
        .select("node", "scope", "subject_id", "ours", "origin_subject_id")
        .unique()
    )


def _known_subjects(session: Session, subject_ids: list[int]) -> pl.DataFrame:
    """Per subject, identifier kind and scope: identities, and when and in which rank the subject was created.

    One query; counted here.
    """
    rows = frame_where_in(
        session,
        "SELECT i.subject_id, i.kind, coalesce(i.partner_id, 0), s.created_at, s.created_rank"
        " FROM identities i JOIN subjects s ON s.id = i.subject_id WHERE i.subject_id {in}",
        subject_ids,
        KNOWN_SCHEMA,
    )
    return rows.group_by("subject_id", "kind", "scope").agg(
        pl.len().cast(pl.Int64).alias("existing"), pl.col("created_at").first(), pl.col("created_rank").first()
    )


def resolve(session: Session, frame: pl.DataFrame, kit: PrivacyKit, guardrails: IdentityGuardrails) -> Resolution:
    """Prepare and plan in one call, for callers that resolve once."""
    return plan(prepare(session, frame, kit), guardrails)


def plan(prepared: PreparedBatch, guardrails: IdentityGuardrails, *, rows: pl.Series | None = None) -> Resolution:
    """Assign records (all, or only ``rows``) to subjects; plan new subjects, identities and merges.

    Nothing is read or written: the caller applies the plan once consent has been checked.
    """
    pairs = prepared.pairs if rows is None else prepared.pairs.filter(pl.col(ROW).is_in(rows.implode()))
    if pairs.height == 0:
        return Resolution(
            rows=pl.DataFrame(schema={ROW: pl.UInt32, "subject_id": pl.Int64}),
            suppressed_rows=prepared.suppressed_rows,
            ambiguous_rows=pl.Series(ROW, [], dtype=pl.UInt32),
            new_subjects=[],
            new_identities=_empty_identities(),
            merges=[],
            refused_merges=0,
            identity_limit_hits=0,
        )
    node_subject = prepared.node_subject.join(pairs.select("node").unique(), on="node", how="semi")
    record_rows = pairs[ROW].unique().sort()
    component_of_row, component_of_subject = _components(pairs, node_subject, record_rows, prepared.node_count)
    subject_components = pl.DataFrame({"subject_id": node_subject["subject_id"].unique().sort()}).with_columns(
        component=pl.Series(component_of_subject, dtype=pl.Int64)
    )
    row_components = pl.DataFrame({ROW: record_rows, "component": pl.Series(component_of_row, dtype=pl.Int64)})

    per_component = subject_components.group_by("component").agg(pl.col("subject_id").sort())
    identity_counts, seniority = prepared.identity_counts, prepared.seniority

    merges: list[Merge] = []
    refused: set[int] = set()
    winner_of: dict[int, int] = {}
    for component, subjects in per_component.iter_rows():
        if len(subjects) == 1:
            winner_of[component] = subjects[0]
            continue
        total = sum(identity_counts.get(s, 0) for s in subjects)
        if len(subjects) > guardrails.max_subjects_per_merge or total > guardrails.max_identities_after_merge:
            refused.add(component)
            continue
        ordered = sorted(subjects, key=lambda s: seniority.get(s, (EARLIEST, 0, s)))
        winner_of[component] = ordered[0]
        merges.append(Merge(winner=ordered[0], losers=tuple(ordered[1:])))

    attached, ambiguous = _partner_subjects(pairs, row_components, prepared.partner_links)
    # A subject that our records of this pass merge into another is merged before anything is
    # stored: a partner's record attached to it goes to the winner, as it would in a later pass.
    merged_into = {loser: merge.winner for merge in merges for loser in merge.losers}
    winner_of.update({component: merged_into.get(s, s) for component, s in attached.items()})
    components_without_subject = sorted(
        set(row_components["component"].to_list()) - set(winner_of) - refused - ambiguous
    )
    new_subjects = [secrets.randbits(SUBJECT_ID_BITS) or 1 for _ in components_without_subject]
    winner_of.update(zip(components_without_subject, new_subjects, strict=True))

    in_ambiguous = pl.col("component").is_in(sorted(ambiguous))
    ambiguous_rows = row_components.filter(in_ambiguous)[ROW]
    assigned = row_components.filter(~in_ambiguous).with_columns(
        subject_id=pl.col("component").replace_strict(winner_of, default=None, return_dtype=pl.Int64)
    )
    if refused:
        assigned = _assign_refused(assigned, pairs, node_subject, refused, seniority)
    # A partner's node is linked by a link of its own scope only: ours attach its record, not its lookup.
    linked = pl.concat([node_subject["node"], prepared.partner_links.filter(~pl.col("ours"))["node"]])
    new_identities, limit_hits = _new_identities(pairs, assigned, prepared, linked, guardrails, refused)
    return Resolution(
        rows=assigned.select(ROW, "subject_id"),
        suppressed_rows=prepared.suppressed_rows,
        ambiguous_rows=ambiguous_rows,
        new_subjects=new_subjects,
        new_identities=new_identities,
        merges=merges,
        refused_merges=len(refused),
        identity_limit_hits=limit_hits,
    )


def _partner_subjects(
    pairs: pl.DataFrame, row_components: pl.DataFrame, partner_links: pl.DataFrame
) -> tuple[dict[int, int], set[int]]:
    """The one existing subject each partner component attaches to, and the components left ambiguous.

    A partner's components hold only its records and its nodes (``identifier_pairs``), so no
    merge can reach them: they are matched here instead. Our links decide; the partner's own
    decide only where ours say nothing, so a partner cannot steer a record we can place. Two or
    more subjects on the deciding side make the component ambiguous: nothing is joined, and its
    records are attached to no one. None on either side: a new subject (not decided here).
    """
    if partner_links.height == 0:
        return {}, set()
    found = (
        pairs.filter(pl.col("scope") != 0)
        .select(ROW, "node")
        .join(partner_links, on="node", how="inner")
        .join(row_components, on=ROW, how="inner")
        .group_by("component")
        .agg(
            ours=pl.col("subject_id").filter(pl.col("ours")).unique().sort(),
            theirs=pl.col("subject_id").filter(~pl.col("ours")).unique().sort(),
        )
    )
    attached: dict[int, int] = {}
    ambiguous: set[int] = set()
    for component, ours, theirs in found.iter_rows():
        deciding = ours or theirs
        if len(deciding) == 1:
            attached[component] = deciding[0]
        elif deciding:
            ambiguous.add(component)
    return attached, ambiguous


def _components(
    pairs: pl.DataFrame, node_subject: pl.DataFrame, rows: pl.Series, node_count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Connected components over rows, identifier nodes and existing subjects, in one sparse pass."""
    # Dense positions by binary search over the sorted unique rows and subjects: no Python dicts.
    subjects = node_subject["subject_id"].unique().sort()
    row_count, subject_offset = rows.len(), rows.len() + node_count
    pair_rows = rows.search_sorted(pairs[ROW]).to_numpy().astype(np.int64)
    pair_nodes = pairs["node"].to_numpy().astype(np.int64) + row_count
    subject_nodes = node_subject["node"].to_numpy().astype(np.int64) + row_count
    subject_ids = subjects.search_sorted(node_subject["subject_id"]).to_numpy().astype(np.int64)
    sources = np.concatenate([pair_rows, subject_nodes])
    targets = np.concatenate([pair_nodes, subject_ids + subject_offset])
    size = subject_offset + subjects.len()
    graph = coo_matrix((np.ones(len(sources), dtype=np.int8), (sources, targets)), shape=(size, size))
    _count, labels = connected_components(graph, directed=False)
    return labels[:row_count], labels[subject_offset:]


def _seniority(known: pl.DataFrame) -> dict[int, Seniority]:
    """How the subjects of a merge rank (smallest first): the earliest created wins, and among
    subjects created together (by one pass) the one whose first record came first in it.

    Neither the subject id nor a pseudonym: ids are random, so a winner picked by id changed from
    run to run, and pseudonyms follow the keyring, so one picked by pseudonym changed from one
    installation to another; with the winner went whose PII and traits were kept and, for a
    refused merge, which subject a record without a known identifier went to, and that record's
    consent. The subject id only breaks ties no ingestion creates (subjects created one by one
    at the same microsecond). From the database (``_known_subjects``) rather than the batch, so
    both plans of a batch rank the same subjects the same way.
    """
    ranked = known.group_by("subject_id").agg(pl.col("created_at").first(), pl.col("created_rank").first())
    return {subject: (created_at, rank, subject) for subject, created_at, rank in ranked.iter_rows()}


def _assign_refused(
    assigned: pl.DataFrame,
    pairs: pl.DataFrame,
    node_subject: pl.DataFrame,
    refused: set[int],
    seniority: Mapping[int, Seniority],
) -> pl.DataFrame:
    """In a refused merge each record keeps the subject of its most specific known identifier; a
    record with none goes to the most senior (``_seniority``) of the subjects the others keep."""
    priority = pl.col("kind").replace_strict(KIND_PRIORITY, return_dtype=pl.Int64)
    ordered = sorted(seniority, key=seniority.__getitem__)
    rank = pl.DataFrame(
        {"subject_id": ordered, "rank": range(len(ordered))}, schema={"subject_id": pl.Int64, "rank": pl.Int64}
    )
    best = (
        pairs.join(node_subject, on="node", how="inner")
        .join(rank, on="subject_id", how="left")
        .sort(priority, "rank", nulls_last=True)
        .group_by(ROW, maintain_order=True)
        .agg(pl.col("subject_id").first().alias("own_subject"))
    )
    fallback = (
        assigned.filter(pl.col("component").is_in(list(refused)))
        .join(best, on=ROW, how="left")
        .join(rank, left_on="own_subject", right_on="subject_id", how="left")
        .group_by("component")
        .agg(pl.col("own_subject").sort_by("rank").drop_nulls().first().alias("fallback"))
    )
    return (
        assigned.join(best, on=ROW, how="left")
        .join(fallback, on="component", how="left")
        .with_columns(
            subject_id=pl.when(pl.col("component").is_in(list(refused)))
            .then(pl.coalesce("own_subject", "fallback"))
            .otherwise(pl.col("subject_id"))
        )
        .drop("own_subject", "fallback")
    )


def _new_identities(
    pairs: pl.DataFrame,
    assigned: pl.DataFrame,
    prepared: PreparedBatch,
    linked: pl.Series,
    guardrails: IdentityGuardrails,
    refused: set[int],
) -> tuple[pl.DataFrame, int]:
    """Identifiers not linked in their own scope yet, linked there to their record's subject, within
    per-type caps per scope; with the origin a split reads (``server.identity.split``).

    ``linked``: nodes with a link in their own scope. A partner's node that only we link is not
    among them: it is linked in the partner's scope too, to the subject our link gave its record
    (``_partner_subjects``), and counts against the partner's caps like any identifier it sends, so
    the caps treat what a partner sends alike whether we link it or not. That link takes our link's
    origin: a split that gives ours back to the subject it came from takes the partner's along,
    rather than leaving the identifier on the winner, where an erasure by it would reach the wrong
    person. Refused merges link nothing new, so a storm cannot grow while it is being refused;
    ambiguous partner records (not in ``assigned``) link nothing either.
    """
    unseen = (
        pairs.join(linked.to_frame("node"), on="node", how="anti")
        .join(assigned, on=ROW, how="inner")
        .filter(~pl.col("component").is_in(list(refused)))
        .select("node", "subject_id")
        .unique(subset="node", keep="first", maintain_order=True)
        .join(prepared.hashed_current.select("node", "kind", "key_version", "digest", "scope"), on="node", how="inner")
    )
    if unseen.height == 0:
        return _empty_identities(), 0
    # Within a cap the first seen are linked: nodes are numbered in order of appearance, and the
    # joins above keep no order of their own.
    ranked = (
        unseen.join(prepared.existing_per_kind, on=["subject_id", "kind", "scope"], how="left")  # new: none
        .sort("node")
        .with_columns(
            rank=pl.int_range(pl.len()).over("subject_id", "kind", "scope") + pl.col("existing").fill_null(0),
            cap=pl.col("kind").replace_strict(dict(guardrails.max_per_kind), return_dtype=pl.Int64),
        )
    )
    kept = ranked.filter(pl.col("rank") < pl.col("cap"))
    # Where we link a partner's node, its record went to our link's subject (or to the winner of
    # a merge of it in this pass), so our link's origin is the one a split must read.
    our_origins = (
        prepared.partner_links.filter(pl.col("ours"))
        .group_by("node")
        .agg(pl.col("origin_subject_id").min().alias("our_origin"))
    )
    return (
        kept.join(our_origins, on="node", how="left", maintain_order="left").select(
            "subject_id",
            pl.coalesce("our_origin", "subject_id").alias("origin_subject_id"),
            "kind",
            "key_version",
            pl.col("digest").alias("pseudonym"),
            pl.when(pl.col("scope") == 0).then(None).otherwise(pl.col("scope")).alias("partner_id"),
        ),
        ranked.height - kept.height,
    )


def _empty_identities() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "subject_id": pl.Int64,
            "origin_subject_id": pl.Int64,
            "kind": pl.String,
            "key_version": pl.Int64,
            "pseudonym": pl.Binary,
            "partner_id": pl.Int64,
        }
    )
