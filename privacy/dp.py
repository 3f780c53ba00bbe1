"""Differential privacy for counts, through OpenDP: what an answer costs and its noise.

A released vector of counts (a breakdown's cells, a trend's days) passes through OpenDP's
Laplace mechanism on integers (the discrete Laplace) with one ``scale`` for every value. What it
costs in ε is OpenDP's own accounting (``Measurement.map``) for the vector's L1 sensitivity: how
many of its values one person can change by one. A person is in one cell of a breakdown and in
its total (2); in up to every day of a trend (its length).

Noise is drawn by OpenDP from the operating system's randomness, never seeded: in this mode a
repeat is answered from the ledger of releases instead (``server.analytics.ledger``), so repeats
cost nothing and reveal nothing new.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

# The modules themselves, not ``opendp.prelude``: the prelude imports OpenDP's scikit-learn, NumPy,
# Polars and Ibis extras, and scikit-learn alone is about two seconds of every ``audience`` process's
# start-up (each server and CLI command), for nothing used here.
import opendp.measurements as measurements
from opendp.domains import atom_domain, vector_domain
from opendp.metrics import l1_distance
from opendp.mod import enable_features

__all__ = ["epsilon_of", "noisy_counts", "scale_for"]

enable_features("contrib")


@lru_cache(maxsize=64)
def _mechanism(scale: float) -> Any:
    return measurements.make_laplace(vector_domain(atom_domain(T=int)), l1_distance(T=int), scale=scale)


def scale_for(epsilon: float, sensitivity: int) -> float:
    """The noise scale at which one answer of ``sensitivity`` costs ``epsilon``."""
    if epsilon <= 0 or sensitivity < 1:
        raise ValueError("epsilon must be positive and sensitivity at least 1")
    return sensitivity / epsilon


def epsilon_of(scale: float, sensitivity: int) -> float:
    """What OpenDP says one release at ``scale`` costs when one person moves the values by ``sensitivity``."""
    return float(_mechanism(scale).map(sensitivity))


def noisy_counts(values: list[int], scale: float) -> list[int]:
    if not values:
        return []
    return [int(value) for value in _mechanism(scale)(values)]
