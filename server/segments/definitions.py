"""Segments as the marketer defines them: create, change, delete, list. Never their members.

Saving validates the rule against the catalogue, the taxonomy and the other segments (the graph
of ``in_segment`` stays a DAG) and refuses with every problem found, each with its position; the
stored rule is the AST as JSON plus its canonical text. A new or changed segment is ``pending``
until evaluated (``server.segments.evaluate``), which the caller runs right after this commits.
Deleting a segment another one names, or one still granted to a partner, is refused, naming them.
A change of rule that would make an active grant carry data its purpose forbids (the segment's own
grants, or those of a segment that reads it through ``in_segment``) is refused as granting is.
Every change is audited by segment name (a marketer's slug, no personal data).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from privacy.purposes import Purpose
from server.runtime import UnitOfWork
from server.segments.dsl import render
from server.segments.health import SegmentHealth, segment_health
from server.segments.purposes import data_used, forbidden_uses
from server.segments.rule_json import RuleJsonError, from_json, to_json
from server.segments.rules import Rule, segments_named
from server.segments.timing import time_dependent
from server.segments.validation import RuleProblem, validate
from server.storage.stale_sketches import drop_segment_sketches
from server.storage.tables import PartnerRow, SegmentGrantRow, SegmentRow
from server.taxonomy.taxonomy import Taxonomy

__all__ = [
    "PENDING",
    "SegmentError",
    "SegmentView",
    "check_rule",
    "create_segment",
    "delete_segment",
    "find_segment",
    "list_segments",
    "rules_by_name",
    "segment_graph",
    "segment_row",
    "update_segment",
]

PENDING: Final = "pending"
_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{1,63}")
MAX_DESCRIPTION: Final = 512


class SegmentError(Exception):
    """A refusal: a code, a message naming the rule it breaks, and the rule's problems if any."""

    def __init__(self, code: str, message: str, problems: Sequence[RuleProblem] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.problems = tuple(problems)


@dataclass(frozen=True, slots=True)
class SegmentView:
    id: int
    name: str
    description: str | None
    rule: Rule | None
    """None when stored in a form this version cannot read (the segment shows ``failed``)."""
    rule_text: str
    template: str | None
    version: int
    depends_on: tuple[str, ...]
    time_dependent: bool
    created_at: datetime
    updated_at: datetime
    health: SegmentHealth
    """Status, staleness, member count, lag, whether stuck, the last error (``server.segments.health``)."""


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise SegmentError("INVALID_NAME", "a segment name is 2-64 characters of a-z, 0-9, '-' or '_'")


def _check_description(description: str | None) -> None:
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise SegmentError("INVALID_DESCRIPTION", f"a description is at most {MAX_DESCRIPTION} characters")


def _readable(stored: object) -> Rule | None:
    try:
        return from_json(stored)
    except RuleJsonError:
        return None


def rules_by_name(session: Session) -> dict[str, Rule]:
    """Every segment's rule that this version can read, by name: what the purpose check walks.
    A rule stored in a form it cannot read is left out (its segment shows ``failed``, and a grant
    that would reach it is refused), so one such row never breaks the others."""
    rows = session.execute(select(SegmentRow.name, SegmentRow.rule)).all()
    return {name: rule for name, stored in rows if (rule := _readable(stored)) is not None}


def segment_graph(session: Session) -> dict[str, frozenset[str]]:
    """Each segment's name and the names its rule reads (``in_segment``), from the ids stored when
    it was saved: what keeps the graph a DAG and names the dependents, whatever the rules hold."""
    rows = session.execute(select(SegmentRow.id, SegmentRow.name, SegmentRow.depends_on)).all()
    names = {segment_id: name for segment_id, name, _ in rows}
    return {name: frozenset(names[i] for i in depends_on if i in names) for _, name, depends_on in rows}


def check_rule(session: Session, rule: Rule, *, taxonomy: Taxonomy, name: str | None = None) -> None:
    """Refuse ``rule`` with every problem found, as saving it under ``name`` (or previewing it) would."""
    if problems := validate(rule, taxonomy=taxonomy, segments=segment_graph(session), name=name):
        raise SegmentError("INVALID_RULE", f"the rule has {len(problems)} problem(s)", problems)


def _validated(session: Session, rule: Rule, *, name: str, taxonomy: Taxonomy) -> list[int]:
    """The ids of the segments ``rule`` names, once it passes every check."""
    check_rule(session, rule, taxonomy=taxonomy, name=name)
    named = sorted(segments_named(rule))
    if not named:
        return []
    return list(session.scalars(select(SegmentRow.id).where(SegmentRow.name.in_(named)).order_by(SegmentRow.id)))


def segment_row(session: Session, name: str) -> SegmentRow:
    row = session.scalar(select(SegmentRow).where(SegmentRow.name == name))
    if row is None:
        raise SegmentError("NOT_FOUND", "no segment has this name")
    return row


def create_segment(
    unit: UnitOfWork,
    *,
    name: str,
    rule: Rule,
    taxonomy: Taxonomy,
    description: str | None = None,
    template: str | None = None,
) -> SegmentView:
    _check_name(name)
    _check_description(description)
    session, now = unit.session, unit.clock()
    if session.scalar(select(SegmentRow.id).where(SegmentRow.name == name)) is not None:
        raise SegmentError("DUPLICATE_NAME", "a segment with this name already exists")
    depends_on = _validated(session, rule, name=name, taxonomy=taxonomy)
    row = SegmentRow(
        name=name,
        description=description,
        rule=to_json(rule),
        rule_text=render(rule),
        depends_on=depends_on,
        time_dependent=time_dependent(rule),
        template=template,
        version=1,
        status=PENDING,
        stale=False,
        member_count=0,
        created_at=now,
        created_by=unit.actor.key_id,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    unit.audit("segment.create", target=f"segment:{name}", details={"template": template or ""})
    return _view(session, row, now)


def update_segment(
    unit: UnitOfWork,
    name: str,
    *,
    taxonomy: Taxonomy,
    rule: Rule | None = None,
    description: str | None = None,
) -> SegmentView:
    """A new rule is a new version, ``pending`` until evaluated; its members so far stay, stale."""
    _check_description(description)
    session, now = unit.session, unit.clock()
    row = segment_row(session, name)
    if rule is not None:
        row.depends_on = _validated(session, rule, name=name, taxonomy=taxonomy)
        _check_grants_allow(session, name, rule)
        row.rule, row.rule_text, row.time_dependent = to_json(rule), render(rule), time_dependent(rule)
        row.version += 1
        row.status, row.stale = PENDING, True
        # The sketch answers for the version it was built under; a new rule is a new set.
        drop_segment_sketches(session, [row.id])
    if description is not None:
        row.description = description
    row.updated_at = now
    session.flush()
    unit.audit(
        "segment.update", target=f"segment:{name}", details={"version": row.version, "rule_changed": rule is not None}
    )
    return _view(session, row, now)


def _check_grants_allow(session: Session, name: str, rule: Rule) -> None:
    """Refuse ``rule`` for ``name`` when an active grant of ``name`` or of a segment reading it
    would then carry data the grant's purpose forbids: a grant was checked against the rules it was
    given, and a change of rule must not slip interests (say) past that check afterwards."""
    graph = segment_graph(session)
    reaching, pending = {name}, [name]
    while pending:
        target = pending.pop()
        for reader in (other for other, reads in graph.items() if target in reads and other not in reaching):
            reaching.add(reader)
            pending.append(reader)
    granted = session.execute(
        select(SegmentRow.name, SegmentGrantRow.purpose)
        .join(SegmentGrantRow, SegmentGrantRow.segment_id == SegmentRow.id)
        .where(SegmentRow.name.in_(sorted(reaching)), SegmentGrantRow.revoked_at.is_(None))
        .distinct()
    ).all()
    if not granted:
        return
    rules = {**rules_by_name(session), name: rule}
    for segment, purpose in sorted(granted):
        if segment in rules and (refused := forbidden_uses(Purpose(purpose), data_used(rules[segment], rules))):
            uses = ", ".join(use.value for use in refused)
            raise SegmentError(
                "PURPOSE_FORBIDS_DATA",
                f"segment {segment} is granted for {purpose}, which does not allow the data this rule uses: {uses};"
                " revoke the grant first",
            )


def delete_segment(unit: UnitOfWork, name: str) -> None:
    """Refused while another segment names it or a partner holds an active grant of it."""
    session = unit.session
    row = segment_row(session, name)
    dependents = sorted(other for other, reads in segment_graph(session).items() if name in reads)
    if dependents:
        raise SegmentError("DEPENDED_ON", f"segments {', '.join(dependents)} depend on this one; change them first")
    grantees = sorted(
        session.scalars(
            select(PartnerRow.name)
            .join(SegmentGrantRow, SegmentGrantRow.partner_id == PartnerRow.id)
            .where(SegmentGrantRow.segment_id == row.id, SegmentGrantRow.revoked_at.is_(None))
            .distinct()
        )
    )
    if grantees:
        raise SegmentError("GRANTED", f"granted to partners {', '.join(grantees)}; revoke the grants first")
    # Revoked grants go with it (nobody reads them: reads stop at revocation), with what they told.
    session.execute(delete(SegmentGrantRow).where(SegmentGrantRow.segment_id == row.id))
    session.delete(row)  # its stays go with it (ON DELETE CASCADE)
    session.flush()
    unit.audit("segment.delete", target=f"segment:{name}")


def find_segment(session: Session, name: str, *, now: datetime) -> SegmentView | None:
    row = session.scalar(select(SegmentRow).where(SegmentRow.name == name))
    return None if row is None else _views(session, [row], now)[0]


def list_segments(session: Session, *, now: datetime) -> list[SegmentView]:
    return _views(session, list(session.scalars(select(SegmentRow).order_by(SegmentRow.name))), now)


def _view(session: Session, row: SegmentRow, now: datetime) -> SegmentView:
    return _views(session, [row], now)[0]


def _views(session: Session, rows: list[SegmentRow], now: datetime) -> list[SegmentView]:
    names = dict(session.execute(select(SegmentRow.id, SegmentRow.name)).all())
    health = {h.segment_id: h for h in segment_health(session, now=now, segment_ids=[row.id for row in rows])}
    return [
        SegmentView(
            id=row.id,
            name=row.name,
            description=row.description,
            rule=_readable(row.rule),
            rule_text=row.rule_text,
            template=row.template,
            version=row.version,
            depends_on=tuple(sorted(names[i] for i in row.depends_on if i in names)),
            time_dependent=row.time_dependent,
            created_at=row.created_at,
            updated_at=row.updated_at,
            health=health[row.id],
        )
        for row in rows
    ]
