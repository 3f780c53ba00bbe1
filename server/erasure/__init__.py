"""Erasure (Art. 17): a person removed from every subject-keyed table, whole, with a receipt.

``erase_subjects`` (``service``) runs in the caller's unit of work; ``scrub_database_files``
(``files``) is for after its commit. The steps, one per ``ErasePolicy``, are in ``steps``; the
persons reached (all fragments of a merged person) in ``persons``; the receipt in ``receipts``; the
extension point for derived data that outlives rows (models, partners' segments) in ``derived``.
docs/erasure.md is the operator's side: what a receipt proves, backups, files.
"""

from __future__ import annotations

from privacy.erasure import ErasureReceipt
from server.erasure.files import scrub_database_files
from server.erasure.service import erase_subjects

__all__ = ["ErasureReceipt", "erase_subjects", "scrub_database_files"]
