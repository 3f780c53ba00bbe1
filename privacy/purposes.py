"""The closed vocabulary of processing purposes (mapped to IAB TCF v2.2 in docs/consent.md).

Threat model: a free-text purpose would let any caller invent a purpose nobody consented to;
a closed enum makes "for what?" a question with a fixed set of answers.
"""

from __future__ import annotations

import enum


class Purpose(enum.StrEnum):
    ANALYTICS = "analytics"
    PERSONALIZATION = "personalization"
    ADVERTISING = "advertising"
    PROFILING = "profiling"
