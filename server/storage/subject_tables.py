"""The one registry of tables that hold a subject id, each declared once with what every
operation on a whole subject does to it.

Merge (``server.identity.merge``), split (``server.identity.split``), erasure and the access
export iterate ``SUBJECT_TABLES``; none of them keeps a list of its own. So a table added for
profiles, segment memberships or models is merged, split, erased and exported the day it is
declared here, and a table holding a subject id that is *not* declared here is found by
``schema_drift``, which reflects the live database (a test runs it on SQLite and PostgreSQL).

This module only declares. The code that carries a policy out lives with its operation (merge
maps each ``MergePolicy`` to a step, split each ``SplitPolicy``), and each operation refuses to
import when a policy has no step. Storage layer: nothing here imports identity or profiles.

Which columns hold a subject id: ``subject_id``, any ``*_subject_id`` (an origin, a merge's
winner and loser), ``subjects.id`` and ``subjects.merged_into``, and any column with a foreign key
to ``subjects.id`` whatever its name. ``message_receipts`` holds none on purpose (it must not say
whose record it was), nor does ``audit_log``.

Merge policies (what happens to a loser's rows when it is merged into its winner):

- ``MERGE_CONSENT``: the winner's state becomes the most restrictive merge of all sides'
  (recorded in the winner's ledger), then the losers' own state rows are dropped.
- ``RE_ENCRYPT``: fields the winner lacks come over re-encrypted under the winner's data key (the
  loser's key is about to be destroyed); the loser's rows go.
- ``FILL_GAPS``: the winner keeps its values and takes the loser's only where it has none.
- ``REPOINT``: rows move to the winner (``subject_id`` changes, an ``origin_subject_id`` stays as
  it was, so a split can find them again).
- ``COMBINE``: the profile state of all sides is combined under the winner and removed from the
  losers, every state table at once (never lost, never counted twice).
- ``MARK_REBUILD``: both sides are marked for a rebuild of their derived data.
- ``DROP_LOSER``: the loser's rows are deleted (its data key: crypto-shredded).
- ``JOURNAL``: one row per merge records the pair and what moved, for a later split.
- ``MARK_MERGED``: the loser's row stays, marked merged into its winner.
- ``EXIT_LOSER``: the loser's segment stays end and every partner told of it gets an exit (the
  loser is no one any more); the winner is re-evaluated from its rebuild mark.

Split policies (what happens when a journaled merge is undone):

- ``BY_ORIGIN``: rows on the winner whose origin is the loser, or a subject merged into the loser
  before, move back to the loser (the table needs an ``origin_subject_id``).
- ``RECOMPUTE``: both sides' profile state is rebuilt from their events, every state table at once.
- ``NEW_KEY``: the loser gets a fresh data key (its old one was destroyed at the merge).
- ``REACTIVATE``: the loser's row is active again, merged into nothing.
- ``STAYS_WITH_WINNER``: nothing moves back; PII, traits and consent cannot be attributed to a
  side once merged (``server.identity.split`` says why), so the winner keeps them.
- ``JOURNAL``: the merge's journal row gets its split time.
- ``MARK_REBUILD``: both sides are marked for a rebuild, as at the merge.
- ``RE_EVALUATE``: nothing moves back; both sides' memberships are re-evaluated from their marks.

Erase policies (what erasure, issue #14, does to the erased subject's rows):

- ``DELETE``: the rows are deleted.
- ``SHRED``: the wrapped data key is deleted, so every ciphertext under it, backups included,
  becomes unreadable (crypto-shredding).
- ``KEEP_AS_RECEIPT``: each event's ``(source, message_key)`` moves to ``message_receipts``, then
  the event is deleted: a resend stays a duplicate and is never judged anew.
- ``SUPPRESS_THEN_DELETE``: the identifiers' pseudonyms go to the suppression list, then the
  rows are deleted: the same person sent again is refused until they consent anew.
- ``UNLINK``: the row stays (a merge happened; the counts stay true) with its subject ids cleared.
  The journal's id columns are nullable for this (migration 0012).
- ``NOTIFY_THEN_UNLINK``: every partner that was told the subject is in a segment is told it left
  (an exit, under the pseudonym it knew: Art. 17(2) and 19), then the log's subject ids are
  cleared; the entries stay, naming no one we can find.

Export policies (what the access export shows the person), each with the export's section name:
``INCLUDE`` (the rows as stored), ``DECRYPT`` (the rows decrypted with the subject's key: PII) and
``EXCLUDE`` (nothing: keys and rebuild marks are machinery, not data about the person).

Order. Merge and split run their steps (``MERGE_STEPS``, ``SPLIT_STEPS``, built by ``steps_of``)
in declared order; a policy's tables are declared together and handled in one step (the three
profile tables are combined once, not three times). Erasure goes table by table in the same order.
``MERGE_ORDER`` and ``SPLIT_ORDER`` list the constraints the order must keep, checked at import:

- consent is merged before anything reads the winner's consent (the profile step asks who
  consents to ``profiling``); the losers' consent state rows are dropped inside that step, after
  the merge that reads them;
- PII is re-encrypted while the loser's key still exists, so before ``DROP_LOSER``;
- identities and events are re-pointed before the profile state is combined (a side whose state
  does not cover its events is recomputed from the winner's events) and before the journal
  records how many rows moved;
- at a split, rows go back by origin before either side's profile is recomputed;
- ``subjects`` comes last, so erasure deletes it after every row that refers to it (its foreign
  keys cascade, and a cascade would skip the suppression of identities).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from sqlalchemy import Table, inspect
from sqlalchemy.engine import Connection

import server.storage.tables  # noqa: F401  (declares every table in Base.metadata)
from server.storage.base import Base

__all__ = [
    "MERGE_ORDER",
    "MERGE_STEPS",
    "SPLIT_ORDER",
    "SPLIT_STEPS",
    "SUBJECT_TABLES",
    "ErasePolicy",
    "ExportPolicy",
    "MergePolicy",
    "SchemaDrift",
    "SplitPolicy",
    "Step",
    "SubjectTable",
    "holds_subject_id",
    "schema_drift",
    "steps_of",
    "subject_table",
]


class MergePolicy(enum.StrEnum):
    MERGE_CONSENT = "merge_consent"
    RE_ENCRYPT = "re_encrypt"
    FILL_GAPS = "fill_gaps"
    REPOINT = "repoint"
    COMBINE = "combine"
    MARK_REBUILD = "mark_rebuild"
    DROP_LOSER = "drop_loser"
    JOURNAL = "journal"
    MARK_MERGED = "mark_merged"
    EXIT_LOSER = "exit_loser"


class SplitPolicy(enum.StrEnum):
    BY_ORIGIN = "by_origin"
    RECOMPUTE = "recompute"
    NEW_KEY = "new_key"
    REACTIVATE = "reactivate"
    STAYS_WITH_WINNER = "stays_with_winner"
    JOURNAL = "journal"
    MARK_REBUILD = "mark_rebuild"
    RE_EVALUATE = "re_evaluate"


class ErasePolicy(enum.StrEnum):
    DELETE = "delete"
    SHRED = "shred"
    KEEP_AS_RECEIPT = "keep_as_receipt"
    SUPPRESS_THEN_DELETE = "suppress_then_delete"
    UNLINK = "unlink"
    NOTIFY_THEN_UNLINK = "notify_then_unlink"


class ExportPolicy(enum.StrEnum):
    INCLUDE = "include"
    DECRYPT = "decrypt"
    EXCLUDE = "exclude"


SUBJECT_ID: Final = "subject_id"
ORIGIN: Final = "origin_subject_id"


@dataclass(frozen=True, slots=True)
class SubjectTable:
    """One table holding subject ids. ``columns``: every column holding one, the first naming
    whose row it is (the one merge re-points and erasure selects by)."""

    name: str
    columns: tuple[str, ...]
    merge: MergePolicy
    split: SplitPolicy
    erase: ErasePolicy
    export: ExportPolicy
    section: str | None = None
    """Where the access export puts the rows; ``None`` exactly when they are excluded."""

    def __post_init__(self) -> None:
        if not self.columns:
            raise ValueError(f"{self.name}: a subject table names its subject id columns")
        if (self.section is None) != (self.export is ExportPolicy.EXCLUDE):
            raise ValueError(f"{self.name}: an exported table has a section, an excluded one none")
        if self.split is SplitPolicy.BY_ORIGIN and ORIGIN not in self.columns:
            raise ValueError(f"{self.name}: rows go back by origin only where they keep one ({ORIGIN})")

    @property
    def subject_column(self) -> str:
        return self.columns[0]

    @property
    def table(self) -> Table:
        """The table as the ORM declares it, for building statements."""
        return Base.metadata.tables[self.name]


SUBJECT_TABLES: Final[tuple[SubjectTable, ...]] = (
    SubjectTable(
        "consent_state",
        (SUBJECT_ID,),
        MergePolicy.MERGE_CONSENT,
        SplitPolicy.STAYS_WITH_WINNER,
        ErasePolicy.DELETE,
        ExportPolicy.INCLUDE,
        "consent",
    ),
    SubjectTable(
        "subject_pii",
        (SUBJECT_ID,),
        MergePolicy.RE_ENCRYPT,
        SplitPolicy.STAYS_WITH_WINNER,
        ErasePolicy.DELETE,
        ExportPolicy.DECRYPT,
        "personal_data",
    ),
    SubjectTable(
        "subject_traits",
        (SUBJECT_ID,),
        MergePolicy.FILL_GAPS,
        SplitPolicy.STAYS_WITH_WINNER,
        ErasePolicy.DELETE,
        ExportPolicy.INCLUDE,
        "traits",
    ),
    # The ledger moves with the person; it keeps no origin, so a split cannot take any of it back.
    SubjectTable(
        "consent_records",
        (SUBJECT_ID,),
        MergePolicy.REPOINT,
        SplitPolicy.STAYS_WITH_WINNER,
        ErasePolicy.DELETE,
        ExportPolicy.INCLUDE,
        "consent_history",
    ),
    # A restriction moves with the person and stays with the winner at a split: lifting it is the
    # compliance team's decision, never a side effect of undoing a merge.
    SubjectTable(
        "subject_restrictions",
        (SUBJECT_ID,),
        MergePolicy.REPOINT,
        SplitPolicy.STAYS_WITH_WINNER,
        ErasePolicy.DELETE,
        ExportPolicy.INCLUDE,
        "restrictions",
    ),
    SubjectTable(
        "identities",
        (SUBJECT_ID, ORIGIN),
        MergePolicy.REPOINT,
        SplitPolicy.BY_ORIGIN,
        ErasePolicy.SUPPRESS_THEN_DELETE,
        ExportPolicy.INCLUDE,
        "identifiers",
    ),
    SubjectTable(
        "events",
        (SUBJECT_ID, ORIGIN),
        MergePolicy.REPOINT,
        SplitPolicy.BY_ORIGIN,
        ErasePolicy.KEEP_AS_RECEIPT,
        ExportPolicy.INCLUDE,
        "events",
    ),
    *(
        SubjectTable(
            name,
            (SUBJECT_ID,),
            MergePolicy.COMBINE,
            SplitPolicy.RECOMPUTE,
            ErasePolicy.DELETE,
            ExportPolicy.INCLUDE,
            "profile",
        )
        for name in ("profile_daily", "profile_summary", "profile_interests")
    ),
    # Segment stays and what partners were told: a merge ends the loser's (the winner is
    # re-evaluated), a split re-evaluates both sides, erasure tells partners before it forgets.
    SubjectTable(
        "segment_memberships",
        (SUBJECT_ID,),
        MergePolicy.EXIT_LOSER,
        SplitPolicy.RE_EVALUATE,
        ErasePolicy.DELETE,
        ExportPolicy.INCLUDE,
        "segments",
    ),
    SubjectTable(
        "grant_changes",
        (SUBJECT_ID,),
        MergePolicy.EXIT_LOSER,
        SplitPolicy.RE_EVALUATE,
        ErasePolicy.NOTIFY_THEN_UNLINK,
        ExportPolicy.INCLUDE,
        "shared_with_partners",
    ),
    SubjectTable(
        "grant_audience",
        (SUBJECT_ID,),
        MergePolicy.EXIT_LOSER,
        SplitPolicy.RE_EVALUATE,
        ErasePolicy.DELETE,
        ExportPolicy.EXCLUDE,
    ),
    SubjectTable(
        "derived_rebuilds",
        (SUBJECT_ID,),
        MergePolicy.MARK_REBUILD,
        SplitPolicy.MARK_REBUILD,
        ErasePolicy.DELETE,
        ExportPolicy.EXCLUDE,
    ),
    SubjectTable(
        "subject_keys",
        (SUBJECT_ID,),
        MergePolicy.DROP_LOSER,
        SplitPolicy.NEW_KEY,
        ErasePolicy.SHRED,
        ExportPolicy.EXCLUDE,
    ),
    SubjectTable(
        "identity_merges",
        ("winner_subject_id", "loser_subject_id"),
        MergePolicy.JOURNAL,
        SplitPolicy.JOURNAL,
        ErasePolicy.UNLINK,
        ExportPolicy.INCLUDE,
        "merges",
    ),
    SubjectTable(
        "subjects",
        ("id", "merged_into"),
        MergePolicy.MARK_MERGED,
        SplitPolicy.REACTIVATE,
        ErasePolicy.DELETE,
        ExportPolicy.INCLUDE,
        "subject",
    ),
)


def subject_table(name: str) -> SubjectTable:
    """The declaration of ``name``; a ``KeyError`` names a table the registry does not hold."""
    for declared in SUBJECT_TABLES:
        if declared.name == name:
            return declared
    raise KeyError(name)


# --- steps and their order ------------------------------------------------------------------

P = TypeVar("P", MergePolicy, SplitPolicy, ErasePolicy)


@dataclass(frozen=True, slots=True)
class Step(Generic[P]):
    """One policy of an operation and the tables it acts on, together."""

    policy: P
    tables: tuple[SubjectTable, ...]


def steps_of(
    policy_of: Callable[[SubjectTable], P], tables: Sequence[SubjectTable], order: Sequence[tuple[P, P, str]]
) -> tuple[Step[P], ...]:
    """An operation's steps: runs of consecutive tables under one policy, in declared order.

    Refused: a policy declared in two places (its step would run twice: the profile state
    combined twice, say), and an order that puts a policy after one that needs it done (``order``
    holds (first, then, why) rules).
    """
    steps: list[Step[P]] = []
    for table in tables:
        policy = policy_of(table)
        if steps and steps[-1].policy == policy:
            steps[-1] = Step(policy, (*steps[-1].tables, table))
        elif any(step.policy == policy for step in steps):
            raise ValueError(f"{table.name}: the tables under {policy!r} must be declared together")
        else:
            steps.append(Step(policy, (table,)))
    position = {step.policy: n for n, step in enumerate(steps)}
    for first, then, why in order:
        if first in position and then in position and position[first] > position[then]:
            raise ValueError(f"{first!r} must come before {then!r}: {why}")
    return tuple(steps)


MERGE_ORDER: Final[tuple[tuple[MergePolicy, MergePolicy, str], ...]] = (
    (MergePolicy.RE_ENCRYPT, MergePolicy.DROP_LOSER, "PII is decrypted with the loser's key before it is destroyed"),
    (MergePolicy.MERGE_CONSENT, MergePolicy.COMBINE, "the profile step asks who consents after the merge"),
    (MergePolicy.REPOINT, MergePolicy.COMBINE, "the combined state is checked against the winner's events"),
    (MergePolicy.REPOINT, MergePolicy.JOURNAL, "the journal records how many rows were re-pointed"),
)
SPLIT_ORDER: Final[tuple[tuple[SplitPolicy, SplitPolicy, str], ...]] = (
    (SplitPolicy.BY_ORIGIN, SplitPolicy.RECOMPUTE, "each side's profile is recomputed from the events it got back"),
)


def check_carried_out(
    operation: str, policies: Iterable[P], steps: Sequence[Step[P]], knows: Mapping[P, frozenset[str] | None]
) -> None:
    """At an operation's import: every policy has code (``knows``: the tables each policy's code is
    written for, ``None`` for any table), and each step is given exactly those tables."""
    if missing := sorted(set(policies) - set(knows)):
        raise RuntimeError(f"{operation} policies without a step: {missing}")
    for step in steps:
        written_for = knows[step.policy]
        declared = frozenset(table.name for table in step.tables)
        if written_for is not None and declared != written_for:
            raise RuntimeError(
                f"the {step.policy} step handles {sorted(written_for)}, the registry gives {sorted(declared)}"
            )


MERGE_STEPS: Final = steps_of(lambda table: table.merge, SUBJECT_TABLES, MERGE_ORDER)
SPLIT_STEPS: Final = steps_of(lambda table: table.split, SUBJECT_TABLES, SPLIT_ORDER)


# --- the live schema against the registry ---------------------------------------------------

SUBJECTS: Final = "subjects"
SUBJECT_ROW_COLUMNS: Final = frozenset({"id", "merged_into"})


def holds_subject_id(table: str, column: str, *, references_subjects: bool = False) -> bool:
    """By name (``subject_id``, ``*_subject_id``, the subject row's own ids) or by a foreign key."""
    return (
        column == SUBJECT_ID
        or column.endswith(f"_{SUBJECT_ID}")
        or (table == SUBJECTS and column in SUBJECT_ROW_COLUMNS)
        or references_subjects
    )


@dataclass(frozen=True, slots=True)
class SchemaDrift:
    """Where the live schema and the registry disagree, as ``table.column`` names."""

    undeclared: tuple[str, ...]
    """Columns holding a subject id that no declaration names: merge and erasure would miss them."""
    missing: tuple[str, ...]
    """Declared columns the database does not have."""

    def __bool__(self) -> bool:
        return bool(self.undeclared or self.missing)


def schema_drift(connection: Connection, tables: Sequence[SubjectTable] = SUBJECT_TABLES) -> SchemaDrift:
    """Reflect the database ``connection`` is on (not the ORM's metadata: what migrations made)."""
    inspector = inspect(connection)
    existing: set[str] = set()
    holding: set[str] = set()
    for table in inspector.get_table_names():
        referencing = {
            column
            for key in inspector.get_foreign_keys(table)
            if key["referred_table"] == SUBJECTS and key["referred_columns"] == ["id"]
            for column in key["constrained_columns"]
        }
        for column in (c["name"] for c in inspector.get_columns(table)):
            existing.add(f"{table}.{column}")
            if holds_subject_id(table, column, references_subjects=column in referencing):
                holding.add(f"{table}.{column}")
    declared = {f"{t.name}.{column}" for t in tables for column in t.columns}
    return SchemaDrift(undeclared=tuple(sorted(holding - declared)), missing=tuple(sorted(declared - existing)))
