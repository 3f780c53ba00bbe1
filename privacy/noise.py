"""Sticky noise: the same question over the same data always gets the same noise.

Threat model: an analyst who may ask as often as they like averages repeated answers; fresh
noise on every answer would shrink to nothing after a few hundred repeats. So the noise of an
answer is drawn from a generator seeded by a keyed hash (HMAC-SHA256 under a key derived from the
keyring, HKDF label of its own) of the *release*: the question and the true values it is asked
over. Asking again gives the same numbers; asking a different question, or the same one after
the data changed, gives an independent draw, which the caller's query budget pays for
(``server.analytics.ledger``). Without the key the seed cannot be predicted, so the noise cannot
be subtracted.

What it does not hide: that two identical answers to one question were (almost surely) given over
the same true values. The values themselves stay hidden behind the noise.

The distribution is the discrete Laplace (two-sided geometric): integer-valued, so answers stay
counts, with ``P(x) ∝ exp(-|x| / scale)``.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from privacy.keyring import KeyPurpose, Keyring

__all__ = ["NoiseSource", "discrete_laplace_std"]

HKDF_INFO: Final = b"audience.analytics-noise.v1"
FINGERPRINT_INFO: Final = b"audience.analytics-ledger.v1"


def discrete_laplace_std(scale: float) -> float:
    """The standard deviation of the discrete Laplace of ``scale``: what an answer's error bar is."""
    p = math.exp(-1.0 / scale)
    return math.sqrt(2.0 * p) / (1.0 - p)


class NoiseSource:
    """Seeded draws keyed by the keyring's current identifier key (rotating that key re-draws)."""

    __slots__ = ("_fingerprints", "_keyed")

    def __init__(self, keyring: Keyring) -> None:
        secret = keyring.current_key(KeyPurpose.IDENTIFIER_HMAC).secret
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(secret)
        self._keyed = HMAC(derived, hashes.SHA256())
        ledger = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=FINGERPRINT_INFO).derive(secret)
        self._fingerprints = HMAC(ledger, hashes.SHA256())

    def fingerprint(self, release: bytes) -> bytes:
        """A keyed digest of a release (a question and its true values) for the ledger: equal for
        equal releases, and not reversible by trying every count, as a plain hash of a count is."""
        keyed = self._fingerprints.copy()
        keyed.update(release)
        return keyed.finalize()

    def __repr__(self) -> str:
        return "NoiseSource(<keyed>)"

    def draws(self, release: bytes, count: int, scale: float) -> list[int]:
        """``count`` integers from the discrete Laplace of ``scale``, the same for the same ``release``."""
        keyed = self._keyed.copy()
        keyed.update(release)
        generator = np.random.Generator(np.random.PCG64(int.from_bytes(keyed.finalize(), "big")))
        success = 1.0 - math.exp(-1.0 / scale)
        # numpy's geometric counts trials to the first success (>= 1); the two offsets cancel.
        drawn = generator.geometric(success, count) - generator.geometric(success, count)
        return [int(value) for value in drawn]
