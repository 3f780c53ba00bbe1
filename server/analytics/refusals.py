"""A question that cannot be asked as sent: which field, which rule, and never the value sent
(an unknown segment name or topic may be anything, a person's name included)."""

from __future__ import annotations

__all__ = ["QuestionRefused"]


class QuestionRefused(Exception):
    """Raised before anything is counted, so a refusal costs no budget and reveals no count.

    ``field`` and ``code`` say which input and which rule, ``message`` says it for a person. None
    of them echoes a value sent, nor says which of several names does not exist (that would let a
    caller probe for segment names one at a time)."""

    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.field, self.code, self.message = field, code, message
