"""Consent: the purpose vocabulary for consent, ledger entries, and the state derived from them.

Threat model: protects people against their data being used for a purpose they never agreed to
or have withdrawn from — by a bug, a stale cache, or an identity merge that "inherits" a grant.
The rules here are opt-in (no record means no consent), append-only (state is derived from the
ledger, never edited in place), and restrictive on merge. It does not verify that a grant was
really given by the person: that is the collecting source's responsibility, recorded as
``source`` and ``policy_version``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from privacy.purposes import Purpose


class ConsentPurpose(enum.StrEnum):
    """Purposes consent is recorded for: the processing purposes plus sharing with a named partner."""

    ANALYTICS = Purpose.ANALYTICS.value
    PERSONALIZATION = Purpose.PERSONALIZATION.value
    ADVERTISING = Purpose.ADVERTISING.value
    PROFILING = Purpose.PROFILING.value
    SHARING = "sharing"


class LegalBasis(enum.StrEnum):
    CONSENT = "consent"
    CONTRACT = "contract"
    LEGITIMATE_INTEREST = "legitimate_interest"
    LEGAL_OBLIGATION = "legal_obligation"


class PrivacySignal(enum.StrEnum):
    """Signals that count as a withdrawal of advertising (GPC; an Art. 21 objection)."""

    GLOBAL_PRIVACY_CONTROL = "gpc"
    OBJECTION = "art21_objection"


NO_PARTNER = 0  # the scope of every purpose but sharing


class ConsentError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ConsentKey:
    """What one consent is about: a purpose, and for sharing, the partner it is shared with."""

    purpose: ConsentPurpose
    partner_id: int = NO_PARTNER

    def __post_init__(self) -> None:
        if (self.purpose is ConsentPurpose.SHARING) != (self.partner_id != NO_PARTNER):
            raise ConsentError("PARTNER_SCOPE", "a partner is named exactly for the sharing purpose")


@dataclass(frozen=True, slots=True)
class ConsentEntry:
    key: ConsentKey
    granted: bool
    legal_basis: LegalBasis
    source: str
    policy_version: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class ConsentStatus:
    granted: bool
    since: datetime


def derive_state(entries: Iterable[ConsentEntry]) -> dict[ConsentKey, ConsentStatus]:
    """The latest entry per key wins; entries may come in any order."""
    state: dict[ConsentKey, ConsentStatus] = {}
    for entry in sorted(entries, key=lambda e: e.recorded_at):
        state[entry.key] = ConsentStatus(entry.granted, entry.recorded_at)
    return state


def may_use(state: Mapping[ConsentKey, ConsentStatus], purpose: Purpose, *, partner_id: int | None = None) -> bool:
    """May a subject's data serve ``purpose`` (and reach ``partner_id``, when given)?

    Opt-in: a missing record is a no. A partner additionally needs the sharing consent that
    names it.
    """
    granted = state.get(ConsentKey(ConsentPurpose(purpose.value)))
    if granted is None or not granted.granted:
        return False
    if partner_id is None:
        return True
    shared = state.get(ConsentKey(ConsentPurpose.SHARING, partner_id))
    return shared is not None and shared.granted


def merged_state(*states: Mapping[ConsentKey, ConsentStatus]) -> dict[ConsentKey, ConsentStatus]:
    """Consent of subjects found to be one person: the most restrictive state wins, unless an
    explicit grant is later than every withdrawal. A key one side never granted is not granted.

    Taken over all sides at once, in any order: which subject survives a merge, and in which
    order its losers come, changes nothing, dates included (a merged status is dated by the
    latest statement it merges). Folding two at a time is not the same for three or more sides
    — a side without the key turns into a dated withdrawal that a later grant of a third side
    would outrank — so a merge passes every side in one call.
    """
    merged: dict[ConsentKey, ConsentStatus] = {}
    for key in set[ConsentKey]().union(*states):
        present = [state[key] for state in states if key in state]
        # The latest status decides; at the same time, a withdrawal outranks a grant.
        latest = max(present, key=lambda status: (status.since, not status.granted))
        merged[key] = ConsentStatus(latest.granted and len(present) == len(states), latest.since)
    return merged
