"""Carrying a verified request out: erasure, restriction, objection, rectification, access export.

Each runs in two transactions. The first moves the request to ``executing`` (audited), so that
from then on it is visibly under way; the second does the whole work and completes the request
in one commit. A crash between or during them leaves the request ``executing`` with nothing half
done: ``resume`` (run by ``audience requests resume`` and at every server start) runs the
unattended kinds again, and the team runs the others again by hand. Running a request again is
always safe: the work is idempotent and a request completed meanwhile is not run twice.

Whom a request reaches is found when it runs, from the identifier's keyed hash
(``persons_by_pseudonym``): every scope's link and every fragment merged into them, so the
person is acted on whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from server.auth.principal import Actor
from server.consent.objection import object_to_advertising
from server.erasure import erase_subjects, scrub_database_files
from server.rectification.service import FieldChange, checked_changes, rectify
from server.requests.lifecycle import (
    RUNS_UNATTENDED,
    RequestError,
    RequestErrorCode,
    RequestKind,
    RequestStatus,
    check_move,
)
from server.requests.records import RequestView, locked_request, target_of, view_of
from server.restriction.service import lift, restrict
from server.runtime import Runtime, UnitOfWork
from server.storage.tables import SubjectRequestRow
from server.subject_access.export import export_person
from server.subjects.reach import persons_by_pseudonym
from server.suppression.service import suppress_pseudonym
from server.taxonomy.taxonomy import Taxonomy, taxonomy_for

__all__ = ["Exported", "Rectified", "execute", "export", "lift_restriction", "rectify_request", "resume"]

Work = Callable[[UnitOfWork, SubjectRequestRow, list[int]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Exported:
    request: RequestView
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rectified:
    request: RequestView
    changes: list[FieldChange]


def _erase(unit: UnitOfWork, row: SubjectRequestRow, subjects: list[int]) -> dict[str, Any]:
    """The filed identifier is suppressed too, even when it reached nobody: the person asked not
    to be processed, and data about them may still be on its way."""
    receipt = erase_subjects(unit, subjects, request_id=row.id, reason="request")
    suppress_pseudonym(
        unit.session, row.identifier_kind, row.identifier_key_version, row.identifier_pseudonym, unit.clock()
    )
    return {
        "receipt_id": receipt.id,
        "subjects": receipt.subjects,
        "keys_destroyed": receipt.keys_destroyed,
        "identifiers_suppressed": receipt.identifiers_suppressed,
        "rows_removed": sum(receipt.rows_removed.values()),
    }


def _restrict(unit: UnitOfWork, row: SubjectRequestRow, subjects: list[int]) -> dict[str, Any]:
    return {"subjects": len(subjects), "restricted": restrict(unit, subjects, request_id=row.id)}


def _object(unit: UnitOfWork, row: SubjectRequestRow, subjects: list[int]) -> dict[str, Any]:
    return {"subjects": len(subjects), "recorded": object_to_advertising(unit, subjects, request_id=row.id)}


UNATTENDED_WORK: Final[Mapping[RequestKind, Work]] = {
    RequestKind.ERASURE: _erase,
    RequestKind.RESTRICTION: _restrict,
    RequestKind.OBJECTION: _object,
}
assert set(UNATTENDED_WORK) == RUNS_UNATTENDED


def execute(runtime: Runtime, actor: Actor, request_id: int) -> RequestView:
    """Run an erasure, restriction or objection request to completion (or finish an interrupted one)."""
    kind = _begin(runtime, actor, request_id, RUNS_UNATTENDED)
    view, _ = _finish(runtime, actor, request_id, UNATTENDED_WORK[kind])
    if kind is RequestKind.ERASURE:
        _scrub(runtime)
    return view


def export(runtime: Runtime, actor: Actor, request_id: int) -> Exported:
    """The access export. A completed access request can be exported again (a lost file, a second
    copy for portability); each export is audited on its own. A caller overtaken by another export
    of the same request (a retry, a double click) gets its own export of the completed request,
    never an empty document."""
    taxonomy = taxonomy_for(runtime.settings.taxonomy_extra)
    again = _export_completed(runtime, actor, request_id, taxonomy)
    if again is not None:
        return again
    document: dict[str, Any] = {}
    _begin(runtime, actor, request_id, frozenset({RequestKind.ACCESS}))
    view, ran = _finish(runtime, actor, request_id, _export_work(document, taxonomy))
    if ran:
        return Exported(view, document)
    again = _export_completed(runtime, actor, request_id, taxonomy)
    if again is None:  # rejected meanwhile
        raise RequestError(RequestErrorCode.ALREADY_CLOSED)
    return again


def _export_work(document: dict[str, Any], taxonomy: Taxonomy) -> Work:
    def work(unit: UnitOfWork, row: SubjectRequestRow, subjects: list[int]) -> dict[str, Any]:
        document.update(export_person(unit, subjects, request_id=row.id, taxonomy=taxonomy))
        return {"subjects": len(subjects), "exports": int((row.outcome or {}).get("exports", 0)) + 1}

    return work


def _export_completed(runtime: Runtime, actor: Actor, request_id: int, taxonomy: Taxonomy) -> Exported | None:
    """Another export of a completed access request; ``None`` while it is not completed."""
    document: dict[str, Any] = {}
    with runtime.unit_of_work(actor) as unit:
        row = locked_request(unit, request_id)
        _require_kind(row, frozenset({RequestKind.ACCESS}))
        if row.status != RequestStatus.COMPLETED:
            return None
        row.outcome = _export_work(document, taxonomy)(unit, row, _persons(unit, row))
        return Exported(view_of(row, unit.clock()), document)


def rectify_request(runtime: Runtime, actor: Actor, request_id: int, changes: Mapping[str, str | None]) -> Rectified:
    """Invalid changes are refused before the request moves, so a typo costs nothing."""
    done: list[FieldChange] = []

    def work(unit: UnitOfWork, _row: SubjectRequestRow, subjects: list[int]) -> dict[str, Any]:
        if subjects:  # nobody reached: nothing held to correct, and the request is answered so
            done.extend(rectify(unit, subjects, changes))
        return {"subjects": len(subjects), "fields_rectified": len(done)}

    with runtime.unit_of_work(actor) as unit:
        _require_kind(locked_request(unit, request_id), frozenset({RequestKind.RECTIFICATION}))
        checked_changes(unit, changes)
    _begin(runtime, actor, request_id, frozenset({RequestKind.RECTIFICATION}))
    view, ran = _finish(runtime, actor, request_id, work)
    if not ran:  # overtaken by another caller: its changes were made, not these
        raise RequestError(RequestErrorCode.ALREADY_CLOSED)
    return Rectified(view, done)


def lift_restriction(runtime: Runtime, actor: Actor, request_id: int) -> RequestView:
    """Ends a completed restriction: processing resumes for the person (Art. 18(3))."""
    with runtime.unit_of_work(actor) as unit:
        row = locked_request(unit, request_id)
        _require_kind(row, frozenset({RequestKind.RESTRICTION}))
        outcome = dict(row.outcome or {})
        if row.status != RequestStatus.COMPLETED or "lifted_at" in outcome:
            raise RequestError(RequestErrorCode.NOT_RESTRICTED)
        now = unit.clock()
        lifted = lift(unit, _persons(unit, row), request_id=row.id)
        row.outcome = {**outcome, "lifted_at": now.isoformat(), "lifted": lifted}
        unit.session.flush()
        unit.audit("request.restriction_lifted", target=target_of(row.id), details={"subjects": lifted})
        return view_of(row, now)


def resume(runtime: Runtime, actor: Actor) -> list[RequestView]:
    """Finish every interrupted erasure, restriction and objection; returns what was finished."""
    with runtime.sessions() as session:
        pending: Sequence[int] = session.scalars(
            SubjectRequestRow.__table__.select()
            .with_only_columns(SubjectRequestRow.id)
            .where(
                SubjectRequestRow.status == RequestStatus.EXECUTING.value,
                SubjectRequestRow.kind.in_([kind.value for kind in RUNS_UNATTENDED]),
            )
            .order_by(SubjectRequestRow.id)
        ).all()
    return [execute(runtime, actor, request_id) for request_id in pending]


# --- the two transactions -----------------------------------------------------------------------


def _require_kind(row: SubjectRequestRow, kinds: frozenset[RequestKind]) -> RequestKind:
    kind = RequestKind(row.kind)
    if kind not in kinds:
        raise RequestError(RequestErrorCode.WRONG_KIND)
    return kind


def _begin(runtime: Runtime, actor: Actor, request_id: int, kinds: frozenset[RequestKind]) -> RequestKind:
    with runtime.unit_of_work(actor) as unit:
        row = locked_request(unit, request_id)
        kind = _require_kind(row, kinds)
        status = RequestStatus(row.status)
        check_move(status, RequestStatus.EXECUTING)
        row.status = RequestStatus.EXECUTING.value
        row.started_at = row.started_at or unit.clock()
        unit.session.flush()
        # ``again``: it was executing already, interrupted or run by another caller right now;
        # which of the two cannot be told here, so the entry says only what is known.
        unit.audit(
            "request.executing",
            target=target_of(row.id),
            details={"kind": row.kind, "again": status is RequestStatus.EXECUTING},
        )
        return kind


def _finish(runtime: Runtime, actor: Actor, request_id: int, work: Work) -> tuple[RequestView, bool]:
    """Does the work and completes the request in one commit; (view, whether it ran)."""
    with runtime.unit_of_work(actor) as unit:
        row = locked_request(unit, request_id)
        if row.status != RequestStatus.EXECUTING:
            return view_of(row, unit.clock()), False  # finished meanwhile by another caller
        outcome = work(unit, row, _persons(unit, row))
        now = unit.clock()
        row.status, row.closed_at, row.outcome = RequestStatus.COMPLETED.value, now, outcome
        unit.session.flush()
        unit.audit("request.completed", target=target_of(row.id), details={"kind": row.kind, **_flat(outcome)})
        return view_of(row, now), True


def _scrub(runtime: Runtime) -> None:
    """After an erasure's commit, its old pages leave the SQLite write-ahead log; a reader holding
    the log defers that to the next checkpoint, so it is tried twice, then left to the checkpointer."""
    for _attempt in range(2):
        if scrub_database_files(runtime.engine).complete:
            return


def _persons(unit: UnitOfWork, row: SubjectRequestRow) -> list[int]:
    return persons_by_pseudonym(unit.session, row.identifier_kind, row.identifier_key_version, row.identifier_pseudonym)


def _flat(outcome: Mapping[str, Any]) -> dict[str, str | int | bool | None]:
    """Audit details are scalars; outcomes are counts and times already."""
    return {key: value for key, value in outcome.items() if isinstance(value, str | int | bool) or value is None}
