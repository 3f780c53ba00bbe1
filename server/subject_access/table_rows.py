"""A registry table's rows for one person, read as a frame in the caller's transaction.

Which columns and how they are typed come from the table's ORM declaration, so a table the
registry (``server.storage.subject_tables``) declares later is read without code here. Binary
columns are never selected: in a subject table they are keyed hashes (identifier pseudonyms,
message keys), ciphertexts or wrapped keys, none of which means anything to the person and some
of which must not leave the database. JSON columns are read as their text and parsed when the
document is built.

A row is the person's when its subject column (the declaration's first) holds one of their ids.
A table's other declared columns are looked up too where an index makes that cheap (the merge
journal's loser); the unindexed ones are provenance (``origin_subject_id``) or a back-pointer
(``subjects.merged_into``) whose subjects are among the person's ids already, since the ids a
request reaches include every subject merged into them (``server.subjects.reach``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import polars as pl
from sqlalchemy import Column, Table
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from server.storage.lookup import frame_where_in
from server.storage.subject_tables import SUBJECT_TABLES, ExportPolicy, SubjectTable

__all__ = ["TableColumns", "columns_of", "rows_of"]

TIMESTAMP: Final = pl.Datetime("us", "UTC")


@dataclass(frozen=True, slots=True)
class TableColumns:
    """What the export reads of a table: each column's frame type, and which hold JSON text."""

    schema: pl.Schema
    json: tuple[str, ...]
    lookups: tuple[str, ...]
    """The subject columns rows are selected by."""
    order: tuple[str, ...]
    """Rows in time order (the first timestamp column), then by primary key."""


def _python_type(column: Column[object]) -> type:
    declared = column.type
    return (declared.impl_instance if isinstance(declared, TypeDecorator) else declared).python_type


def _frame_type(column: Column[object]) -> pl.DataType | None:
    """``None`` for a binary column (left out); a ``TypeError`` names a type the export cannot show."""
    python_type = _python_type(column)
    if python_type is bytes:
        return None
    if python_type is bool:
        return pl.Boolean()
    if python_type is int:
        return pl.Int64()
    if python_type is float:
        return pl.Float64()
    if python_type is datetime:
        return TIMESTAMP
    if python_type in (dict, list) or issubclass(python_type, (str, enum.Enum)):
        return pl.String()
    raise TypeError(f"{column.table.name}.{column.name}: the access export cannot show a {python_type.__name__}")


def _indexed(table: Table, name: str) -> bool:
    leading = [[column.name for column in index.columns][:1] for index in table.indexes]
    return [name] in leading or [column.name for column in table.primary_key.columns][:1] == [name]


def columns_of(declared: SubjectTable) -> TableColumns:
    table = declared.table
    types = {column.name: _frame_type(column) for column in table.columns}
    schema = pl.Schema({name: dtype for name, dtype in types.items() if dtype is not None})
    json = tuple(column.name for column in table.columns if _python_type(column) in (dict, list))
    others = [name for name in declared.columns[1:] if _indexed(table, name) and name in schema]
    lookups = (declared.subject_column, *others)
    timestamps = [name for name, dtype in schema.items() if dtype == TIMESTAMP][:1]
    keys = [column.name for column in table.primary_key.columns if column.name in schema]
    return TableColumns(schema=schema, json=json, lookups=lookups, order=tuple(dict.fromkeys(timestamps + keys)))


def rows_of(session: Session, declared: SubjectTable, subject_ids: Sequence[int]) -> pl.DataFrame:
    """Every row of ``declared`` that names one of ``subject_ids``, each once (``TableColumns.schema``)."""
    columns = COLUMNS[declared.name]
    selected = ", ".join(f"CAST({name} AS TEXT) AS {name}" if name in columns.json else name for name in columns.schema)
    ids = sorted(set(subject_ids))
    frames = [
        frame_where_in(session, f"SELECT {selected} FROM {declared.name} WHERE {lookup} {{in}}", ids, columns.schema)
        for lookup in columns.lookups
    ]
    rows = frames[0] if len(frames) == 1 else pl.concat(frames).unique(maintain_order=True)
    return rows.sort(list(columns.order), nulls_last=True) if columns.order else rows


# Built at import for every exported table: a column the export cannot show fails here, in tests,
# not in front of a data subject.
COLUMNS: Final = {
    declared.name: columns_of(declared) for declared in SUBJECT_TABLES if declared.export is not ExportPolicy.EXCLUDE
}
