"""Operators find every setting in docs/configuration.md; a new setting without a line fails here."""

from __future__ import annotations

from pathlib import Path

import annotated_types

from server.settings import ENV_PREFIX, Settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`{ENV_PREFIX}{name.upper()}`" not in text]
    assert missing == []


def test_every_numeric_setting_has_a_documented_floor_and_ceiling() -> None:
    """A number past what the code can use (a retention of a million days) must stop start-up, not every ingest."""
    text = DOC.read_text(encoding="utf-8")
    for name, field in Settings.model_fields.items():
        if field.annotation not in (int, int | None):
            continue
        floors = [m.ge for m in field.metadata if isinstance(m, annotated_types.Ge)]
        ceilings = [m.le for m in field.metadata if isinstance(m, annotated_types.Le)]
        assert len(floors) == len(ceilings) == 1, name
        row = f"| `{ENV_PREFIX}{name.upper()}` | {floors[0]:,} | {ceilings[0]:,} |"
        assert row in text, row
