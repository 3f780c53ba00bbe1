"""Labels a sender writes (a campaign, a batch or consent source, a policy version): kept in clear
only when the operator declared them, stored as a keyed hash otherwise.

Threat model: a label column is free text to whoever fills it, so a sender — a tag manager set up
by hand, an agent typing a customer's name as the campaign — can put personal data in it, and
the database would then hold it in clear. A label declared in configuration is kept as written;
any other becomes ``h<version>:<24 hex digits>``, an HMAC-SHA256 under a key derived (HKDF) from
the IDENTIFIER_HMAC key of that version, so nothing a sender chose reaches the disk, equal labels
still group together, and whoever holds the keyring can compute a known label's stored form.

It does not hide equality (every event of one campaign carries one hash), and whoever holds the
keyring can test candidate labels, as with identifier pseudonyms. A label hashed under one key
version is not equal to the same label hashed after a rotation of the identifier key, nor to its
clear form once declared: ``every_form`` lists them all, for whatever must recognise the label
across a rotation or a declaration (a sender's source, which scopes its message ids).
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from privacy.keyring import KeyPurpose, Keyring

__all__ = ["HASHED_LABEL_PATTERN", "LabelKeeper"]

HASHED_LABEL_PATTERN = r"^h[0-9]+:[0-9a-f]{24}$"
_DIGEST_HEX = 24  # 96 bits: no two labels of one installation collide; fits every label column (32+)
_INFO = b"audience.label-hmac.v1"


class LabelKeeper:
    """The stored form of a sender's label: as written if declared, else its keyed hash."""

    __slots__ = ("_declared", "_keyed", "_others", "_version")

    def __init__(self, keyring: Keyring, declared: Iterable[str] = ()) -> None:
        self._version = keyring.current[KeyPurpose.IDENTIFIER_HMAC]
        keyed = {
            version: _label_hmac(keyring.key(KeyPurpose.IDENTIFIER_HMAC, version).secret)
            for version in keyring.versions(KeyPurpose.IDENTIFIER_HMAC)
        }
        self._keyed = keyed.pop(self._version)
        self._others = keyed
        self._declared = frozenset(declared)

    def __repr__(self) -> str:
        return f"LabelKeeper(key_version={self._version}, declared={len(self._declared)})"

    @property
    def declared(self) -> frozenset[str]:
        return self._declared

    def kept(self, label: str) -> str:
        if label in self._declared:
            return label
        return _hashed(self._keyed, self._version, label)

    def every_form(self, label: str) -> tuple[str, ...]:
        """What ``label`` is or was stored as: as written, and hashed under every key version held.

        ``kept(label)`` comes first. A form is no secret from whoever holds the keyring.
        """
        forms = [self.kept(label), label, _hashed(self._keyed, self._version, label)]
        forms += [_hashed(mac, version, label) for version, mac in sorted(self._others.items())]
        return tuple(dict.fromkeys(forms))

    def kept_column(self, labels: pl.Expr, distinct: pl.Series) -> pl.Expr:
        """``kept`` of each value of ``labels``, whose values not null are among ``distinct``.

        Each distinct value is hashed once: a batch holds thousands of events and a few campaigns.
        A value outside ``distinct`` becomes null.
        """
        mapping = {label: self.kept(label) for label in distinct.drop_nulls().unique().to_list()}
        return labels.replace_strict(mapping, default=None, return_dtype=pl.String)


def _label_hmac(identifier_key: bytes) -> HMAC:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(identifier_key)
    return HMAC(derived, hashes.SHA256())


def _hashed(keyed: HMAC, version: int, label: str) -> str:
    mac = keyed.copy()
    mac.update(label.encode("utf-8"))
    return f"h{version}:{mac.finalize().hex()[:_DIGEST_HEX]}"
