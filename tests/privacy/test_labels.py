"""Labels a sender writes: in clear only when declared, otherwise a keyed hash nobody can reverse
without the keyring."""

from __future__ import annotations

import re

import polars as pl
import pytest

from privacy.keyring import generate_keyring
from privacy.labels import HASHED_LABEL_PATTERN, LabelKeeper
from server.settings import Settings, SettingsError, load_settings


def test_a_declared_label_is_kept_as_written_and_any_other_is_hashed() -> None:
    keeper = LabelKeeper(generate_keyring(), declared={"spring-sale", "cmp:web"})
    assert keeper.kept("spring-sale") == "spring-sale"
    assert keeper.kept("cmp:web") == "cmp:web"
    hashed = keeper.kept("bartholomew.okonkwo")
    assert re.fullmatch(HASHED_LABEL_PATTERN, hashed)
    assert "bartholomew" not in hashed
    assert "okonkwo" not in hashed


def test_a_label_hashes_the_same_under_one_keyring_and_differently_under_another() -> None:
    keyring = generate_keyring()
    assert LabelKeeper(keyring).kept("summer-2024") == LabelKeeper(keyring).kept("summer-2024")
    assert LabelKeeper(keyring).kept("summer-2024") != LabelKeeper(keyring).kept("summer-2025")
    assert LabelKeeper(keyring).kept("summer-2024") != LabelKeeper(generate_keyring()).kept("summer-2024")


def test_a_hash_sent_as_a_label_is_hashed_again() -> None:
    """A sender cannot pass a stored form off as another label's: only declared labels stay as written."""
    keeper = LabelKeeper(generate_keyring())
    stored = keeper.kept("summer-2024")
    assert keeper.kept(stored) != stored


def test_a_column_of_labels_is_hashed_once_per_value_and_keeps_its_nulls() -> None:
    keeper = LabelKeeper(generate_keyring(), declared={"spring-sale"})
    labels = pl.Series("campaign", ["a1", None, "spring-sale", "a1"])
    kept = pl.select(keeper.kept_column(pl.lit(labels), labels)).to_series()
    assert kept.to_list() == [keeper.kept("a1"), None, "spring-sale", keeper.kept("a1")]


def test_the_vocabulary_setting_declares_labels_and_refuses_free_text(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(label_vocabulary=" cmp:web, spring-sale ,").declared_labels == {"cmp:web", "spring-sale"}
    monkeypatch.setenv("AUDIENCE_LABEL_VOCABULARY", "cmp:web,Ana Lima's list")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert "AUDIENCE_LABEL_VOCABULARY" in str(refused.value)
    assert "Ana" not in str(refused.value)
