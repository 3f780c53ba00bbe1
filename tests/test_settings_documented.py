"""Operators find every setting in docs/configuration.md; a new setting without a line fails here."""

from __future__ import annotations

from pathlib import Path

from server.settings import ENV_PREFIX, Settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`{ENV_PREFIX}{name.upper()}`" not in text]
    assert missing == []
