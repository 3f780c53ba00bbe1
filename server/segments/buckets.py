"""Stable random buckets for holdouts: the same subject, salt and bucket count give the same
bucket on every machine, in every version, in batch and in real time.

A holdout that moved people between buckets when the server was upgraded would mix treated and
untreated people, so nothing here may depend on a library's hashing (``pl.Expr.hash`` changes
between Polars versions and is not specified): the mix is SplitMix64's finalizer, written with
wrapping 64-bit integer arithmetic, which Polars (and any language) computes identically. The
salt enters as a 64-bit key from its SHA-256, so unrelated salts give independent buckets; the
bucket is the mixed value modulo the count (the bias of a 64-bit value modulo at most 10,000 is
below 1e-15).
"""

from __future__ import annotations

import hashlib
from typing import Final

import polars as pl

__all__ = ["bucket_expr", "salt_key", "splitmix64"]

MASK: Final = 2**64 - 1
GOLDEN: Final = 0x9E3779B97F4A7C15
MIX_1: Final = 0xBF58476D1CE4E5B9
MIX_2: Final = 0x94D049BB133111EB


def salt_key(salt: str) -> int:
    """The salt as an unsigned 64-bit key: the first eight bytes of its SHA-256, big-endian."""
    return int.from_bytes(hashlib.sha256(salt.encode("utf-8")).digest()[:8], "big")


def splitmix64(value: int) -> int:
    """The reference in plain Python (tests hold ``bucket_expr`` to it)."""
    z = (value + GOLDEN) & MASK
    z = ((z ^ (z >> 30)) * MIX_1) & MASK
    z = ((z ^ (z >> 27)) * MIX_2) & MASK
    return z ^ (z >> 31)


def _u64(value: int) -> pl.Expr:
    return pl.lit(value, dtype=pl.UInt64)


def _shifted(z: pl.Expr, bits: int) -> pl.Expr:
    return z.xor(z // _u64(2**bits))


def bucket_expr(subject_id: pl.Expr, salt: str, buckets: int) -> pl.Expr:
    """The bucket (0 to ``buckets - 1``, Int64) of each ``subject_id`` (Int64) under ``salt``:
    ``splitmix64(subject_id as unsigned XOR salt_key(salt)) % buckets``."""
    z = subject_id.cast(pl.Int64).reinterpret(signed=False).xor(_u64(salt_key(salt))) + _u64(GOLDEN)
    z = _shifted(z, 30) * _u64(MIX_1)
    z = _shifted(z, 27) * _u64(MIX_2)
    return (_shifted(z, 31) % _u64(buckets)).cast(pl.Int64)
