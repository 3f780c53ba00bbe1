"""Fingerprints of the keyring the database belongs to (``privacy.keyring_fingerprint``); never a key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.base import Base, UtcDateTime


class KeyringFingerprintRow(Base):
    """One row per key version: HKDF of the key under a fixed label, so it reveals nothing about it."""

    __tablename__ = "keyring_fingerprints"

    purpose: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)
