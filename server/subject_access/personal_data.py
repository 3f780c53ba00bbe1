"""Tables the registry exports as ``DECRYPT``: their rows with each value decrypted.

Each such table needs code that knows its ciphertext (``DECRYPTERS``); the export refuses to
import when the registry declares one without it, so a new encrypted table is never exported
as rows with their values silently missing.

A value is decrypted with its subject's own data key (``server.subjects.service.read_pii``). A
subject without one (erased, or merged into another: its key was destroyed, its fields
re-encrypted under the winner's) keeps its rows with ``value`` null: nobody can read them any
more, and the count still says they are held.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

import polars as pl
from sqlalchemy.orm import Session

from server.privacy_kit import PrivacyKit
from server.storage.subject_tables import SUBJECT_TABLES, ExportPolicy
from server.subjects.service import read_pii

__all__ = ["DECRYPTERS", "Decrypter", "decrypted_pii"]

Decrypter = Callable[[Session, pl.DataFrame, PrivacyKit], pl.DataFrame]
VALUE: Final = "value"


def decrypted_pii(session: Session, rows: pl.DataFrame, kit: PrivacyKit) -> pl.DataFrame:
    """``subject_pii`` rows (subject_id, field, ...) with ``value`` after ``field``.

    One key unwrap and one read per subject (a person has a handful), the rows themselves columnar.
    """
    values: list[tuple[int, str, str]] = []
    for subject_id in rows["subject_id"].unique().sort().to_list():
        try:
            fields = read_pii(session, subject_id, kit)
        except LookupError:  # no data key: crypto-shredded or merged away; nothing can be read
            continue
        values.extend((subject_id, name, value) for name, value in fields.items())
    plain = pl.DataFrame(
        values, schema={"subject_id": pl.Int64(), "field": pl.String(), VALUE: pl.String()}, orient="row"
    )
    at = rows.columns.index("field") + 1
    order = [*rows.columns[:at], VALUE, *rows.columns[at:]]
    return rows.join(plain, on=["subject_id", "field"], how="left", maintain_order="left").select(order)


DECRYPTERS: Final[Mapping[str, Decrypter]] = {"subject_pii": decrypted_pii}

_undeclared = sorted(t.name for t in SUBJECT_TABLES if t.export is ExportPolicy.DECRYPT and t.name not in DECRYPTERS)
if _undeclared:
    raise RuntimeError(f"DECRYPT tables without a decrypter in the access export: {_undeclared}")
