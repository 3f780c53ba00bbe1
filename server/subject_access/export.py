"""The access and portability export (GDPR Art. 15 and 20): everything held on one person, as JSON.

The sections come from the registry of subject-keyed tables (``server.storage.subject_tables``):
every table whose export policy is not ``EXCLUDE`` is read for all of the person's subjects and
shown in its declared ``section``, so a table declared later is exported the day it is declared,
with no code here. ``DECRYPT`` tables are decrypted with each subject's own key
(``personal_data``). Two parts come from elsewhere: the profile the server computes from the
state (``profile_features``, added to the ``profile`` section) and who accessed the data
(``accesses``). ``docs/access-export.md`` documents the layout, field by field.

The caller passes the person as ``server.subjects.reach.persons_reached`` finds them: every
scope's subject and every fragment merged into one. Reading the person's data is itself audited
(``access.export``), with counts per section and nothing else. Reads only; the caller's unit of
work owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.runtime import UnitOfWork
from server.storage.subject_tables import SUBJECT_TABLES, ExportPolicy, SubjectTable
from server.storage.tables import PartnerRow
from server.subject_access.accesses import accesses, request_target, subject_target
from server.subject_access.personal_data import DECRYPTERS
from server.subject_access.profile_features import computed_profiles
from server.subject_access.rendering import PARTNER_ID, iso, render
from server.subject_access.table_rows import COLUMNS, rows_of
from server.taxonomy.taxonomy import Taxonomy

__all__ = ["ACCESSES", "FORMAT", "PROFILE", "SECTIONS", "VERSION", "export_person"]

FORMAT: Final = "audience-subject-export"
VERSION: Final = 1
EXPORTED: Final[tuple[tuple[SubjectTable, str], ...]] = tuple(
    (t, t.section) for t in SUBJECT_TABLES if t.export is not ExportPolicy.EXCLUDE and t.section is not None
)
ACCESSES: Final = "accesses"
PROFILE: Final = "profile"
SECTIONS: Final[tuple[str, ...]] = (*dict.fromkeys(section for _table, section in EXPORTED), ACCESSES)
"""Every section of a document, in order: the registry's, then who accessed the data."""

NOTES: Final = {
    "identifiers": (
        "Identifiers are kept only as keyed hashes, which cannot be turned back into the identifier: "
        "each is shown by its kind and scope. An email address or phone number you gave us as personal "
        "data appears, decrypted, in personal_data."
    ),
    "hashed_labels": (
        "Columns named in a table's hashed_labels hold a label (a campaign, a source) that was stored "
        "only as a keyed hash, shown as stored (h<version>:<hex>): the label as written was not kept."
    ),
}

if ACCESSES in SECTIONS[:-1] or PROFILE not in SECTIONS:
    raise RuntimeError(f"the registry's sections must include {PROFILE!r} and must not use {ACCESSES!r}")


def export_person(
    unit: UnitOfWork, subject_ids: Sequence[int], *, request_id: int | None, taxonomy: Taxonomy
) -> dict[str, Any]:
    """The document (JSON-serialisable: dicts, lists, text, numbers, booleans, null) for the person
    made of ``subject_ids``; ``request_id``: the access request it answers, if any.

    ``taxonomy``: the topic names interests are shown with (the runtime's, ``taxonomy_for``).
    """
    session = unit.session
    ids = sorted(set(subject_ids))
    now = unit.clock()
    frames = {table.name: _rows(unit, table, ids) for table, _section in EXPORTED}
    partners = _partner_names(session, frames.values())
    sections: dict[str, dict[str, Any]] = {}
    for table, section_name in EXPORTED:
        shown = render(frames[table.name], partners=partners, table=table.name, json_columns=COLUMNS[table.name].json)
        section = sections.setdefault(section_name, {"count": 0, "tables": {}})
        section["count"] += len(shown.rows)
        section["tables"][table.name] = {
            "count": len(shown.rows),
            "hashed_labels": list(shown.hashed_labels),
            "rows": shown.rows,
        }
    profiles = computed_profiles(session, ids, config=unit.profiles, taxonomy=taxonomy, now=now)
    sections[PROFILE]["computed"] = render(profiles, partners=partners).rows
    entries = accesses(session, ids, request_id=request_id)
    sections[ACCESSES] = {"count": len(entries), "entries": entries}
    counts = {name: int(sections[name]["count"]) for name in SECTIONS}
    unit.audit(
        "access.export",
        target=request_target(request_id) if request_id is not None else _subjects_target(ids),
        details={"subjects": len(ids), **counts},
    )
    return {
        "format": FORMAT,
        "version": VERSION,
        "generated_at": iso(now),
        "request_id": request_id,
        "subjects": ids,
        "counts": counts,
        "notes": dict(NOTES),
        "sections": {name: sections[name] for name in SECTIONS},
    }


def _rows(unit: UnitOfWork, table: SubjectTable, subject_ids: list[int]) -> pl.DataFrame:
    rows = rows_of(unit.session, table, subject_ids)
    if table.export is ExportPolicy.DECRYPT:
        rows = DECRYPTERS[table.name](unit.session, rows, unit.kit)
    return rows


def _partner_names(session: Session, frames: Iterable[pl.DataFrame]) -> dict[int, str]:
    ids = sorted(
        {int(i) for frame in frames if PARTNER_ID in frame.columns for i in frame[PARTNER_ID].drop_nulls().unique()}
    )
    if not ids:
        return {}
    return dict(session.execute(select(PartnerRow.id, PartnerRow.name).where(PartnerRow.id.in_(ids))).all())


def _subjects_target(ids: list[int]) -> str | None:
    """Without a request, the entry names the person by their first subject (by id), as other
    entries about a subject do; ``details.subjects`` says how many the export covered."""
    return subject_target(ids[0]) if ids else None
