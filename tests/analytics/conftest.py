"""A runtime with k at its floor (10), so cells of a few dozen real people show and small ones do not.

Its noise has scale 1 (the smallest allowed; the live servers' probes run at the default 5): the
noisy decisions (the threshold at k + 3, secondary suppression on noisy values) are then far from
their edges for these populations of tens to hundreds, so each test's outcome is the same under
every keyring, while every decision still goes through the noisy path."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from privacy.keyring import Keyring
from server.runtime import Runtime, build_runtime
from server.settings import Settings
from tests.ingest.batches import fixed_clock

K = 10
QUIET: dict[str, float] = {"anonymity_threshold": K, "analytics_noise_scale": 1.0}


@pytest.fixture
def analytics_runtime(settings: Settings, keyring: Keyring) -> Iterator[Runtime]:
    built = build_runtime(settings.model_copy(update=QUIET), keyring=keyring)
    try:
        yield fixed_clock(built)
    finally:
        built.dispose()
