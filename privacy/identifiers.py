"""Identifier normalization: one canonical text per person-identifier, before it is keyed.

Threat model: protects the *linkability* guarantees of everything keyed on an identifier.
If " Ana@Example.org" and "ana@example.org" normalized differently, an erased person would
come back unsuppressed under the second spelling, a compliance lookup would miss half a
profile, and a partner could split one person into two. It also stops a family of
collisions: all-zero advertising ids ("limit ad tracking"), invisible control or format
characters, and identifiers of different kinds or partners that share a text, which
``NormalizedIdentifier.domain_tagged`` keeps apart. It protects against careless or hostile
*input* (a partner or file sending odd spellings), never against someone who holds the
raw identifiers: normalization is public and unkeyed, the secrecy comes from
``privacy.pseudonyms``. Errors name the kind and the rule, never the value, so a rejected
record cannot leak an email into a log.

It does not decide whether two different identifiers belong to one person (the identity
graph does), does not verify that an address or number exists, and accepts only ASCII email
addresses (internationalized domains must arrive in their ``xn--`` form).

The scalar normalizers (``normalize_email`` ...) and the column ones (``normalize_emails``
...) implement the same rules and are tested against each other.
"""

from __future__ import annotations

import enum
import functools
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

import phonenumbers
import polars as pl

__all__ = [
    "DEFAULT_RULES",
    "IdentifierKind",
    "InvalidIdentifier",
    "NormalizationRules",
    "NormalizedIdentifier",
    "PlusTagRule",
    "domain_prefix",
    "normalize",
    "normalize_column",
    "normalize_customer_id",
    "normalize_customer_ids",
    "normalize_device_id",
    "normalize_device_ids",
    "normalize_email",
    "normalize_emails",
    "normalize_partner_user_id",
    "normalize_partner_user_ids",
    "normalize_phone",
    "normalize_phones",
    "normalize_value",
    "normalized_expr",
]

MAX_EMAIL_LENGTH = 254
MAX_EMAIL_LOCAL_LENGTH = 64
MAX_PHONE_INPUT_LENGTH = 64
MAX_DEVICE_ID_LENGTH = 128
MAX_CUSTOMER_ID_LENGTH = 256
MAX_PARTNER_USER_ID_LENGTH = 256
MAX_PARTNER_ID = 2**63 - 1

# Stripped from both ends of every identifier. An explicit set rather than str.strip()'s
# notion of whitespace, so Python and Polars (Rust) strip exactly the same characters.
SURROUNDING_WHITESPACE = (
    " \t\n\r\x0b\x0c\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u200b\u2028\u2029\u202f\u205f\u3000\ufeff"
)

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_TOP_LABEL = r"[A-Za-z](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
# Dot-atom local part, a domain of at least two labels whose last one starts with a letter.
EMAIL_PATTERN = rf"^{_ATEXT}+(?:\.{_ATEXT}+)*@(?:{_LABEL}\.)+{_TOP_LABEL}$"
PLUS_TAG_PATTERN = r"^([^+@]+)\+[^@]*@"
HEXLIKE_PATTERN = r"^[0-9A-Fa-f]+(?:-[0-9A-Fa-f]+)*$"
ZERO_PLACEHOLDER_PATTERN = r"^[0\-]+$"
# Control, format, line and paragraph separators: invisible, so they make lookalikes.
FORBIDDEN_CHARS_PATTERN = r"[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]"
INNER_WHITESPACE_PATTERN = r"\s"
# What people write in a phone number; letters ("vanity" numbers, "ext.") are refused so that
# a number buried in other text is not fished out of it.
PHONE_CHARS_PATTERN = r"^[0-9+\-(). /]+$"

_EMAIL_RE = re.compile(EMAIL_PATTERN)
_PLUS_TAG_RE = re.compile(PLUS_TAG_PATTERN)
_HEXLIKE_RE = re.compile(HEXLIKE_PATTERN)
_ZERO_PLACEHOLDER_RE = re.compile(ZERO_PLACEHOLDER_PATTERN)
_PHONE_CHARS_RE = re.compile(PHONE_CHARS_PATTERN)
_ASCII_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class IdentifierKind(enum.StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    DEVICE_ID = "device_id"
    CUSTOMER_ID = "customer_id"
    PARTNER_USER_ID = "partner_user_id"


ERROR_CODES: dict[IdentifierKind, str] = {
    IdentifierKind.EMAIL: "INVALID_EMAIL",
    IdentifierKind.PHONE: "INVALID_PHONE",
    IdentifierKind.DEVICE_ID: "INVALID_DEVICE_ID",
    IdentifierKind.CUSTOMER_ID: "INVALID_CUSTOMER_ID",
    IdentifierKind.PARTNER_USER_ID: "INVALID_PARTNER_USER_ID",
}


class InvalidIdentifier(ValueError):
    """An identifier broke a normalization rule.

    ``code`` is stable (``INVALID_EMAIL`` ...) and ``message`` names the rule; neither ever
    contains the rejected value.
    """

    def __init__(self, kind: IdentifierKind, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.kind = kind
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"InvalidIdentifier(kind={self.kind.value!r}, code={self.code!r}, message={self.message!r})"


def _invalid(kind: IdentifierKind, message: str) -> InvalidIdentifier:
    return InvalidIdentifier(kind, ERROR_CODES[kind], message)


class PlusTagRule(enum.StrEnum):
    """What to do with ``+tag`` in an email's local part (``ana+news@example.org``)."""

    KEEP = "keep"
    STRIP = "strip"


@dataclass(frozen=True, slots=True)
class NormalizationRules:
    """The configurable parts of normalization; changing them changes every pseudonym.

    ``plus_tag=STRIP`` merges ``ana+news@`` into ``ana@``: right for most mail providers,
    wrong for the few where ``+`` is an ordinary character, hence off by default.
    ``default_phone_region`` reads numbers written without a country code; ``None`` means
    such numbers are refused.
    """

    plus_tag: PlusTagRule = PlusTagRule.KEEP
    default_phone_region: str | None = "DE"

    def __post_init__(self) -> None:
        region = self.default_phone_region
        if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("default_phone_region is not a region code known to phonenumbers")


DEFAULT_RULES = NormalizationRules()


def _check_partner_scope(kind: IdentifierKind, partner_id: int | None) -> None:
    if kind is IdentifierKind.PARTNER_USER_ID:
        if partner_id is None:
            raise _invalid(kind, "partner_user_id requires the id of the partner that sent it")
        if isinstance(partner_id, bool) or not isinstance(partner_id, int) or not 0 < partner_id <= MAX_PARTNER_ID:
            raise _invalid(kind, "partner_id must be a positive 63-bit integer")
    elif partner_id is not None:
        raise _invalid(kind, f"{kind.value} is not partner-scoped; partner_id must be None")


def _length_prefixed(part: bytes) -> bytes:
    return len(part).to_bytes(4, "big") + part


DOMAIN_TAG = b"audience.identifier.v1"


def _build_prefix(kind: IdentifierKind, partner_id: int | None) -> bytes:
    scope = b"" if partner_id is None else partner_id.to_bytes(8, "big")
    return _length_prefixed(DOMAIN_TAG) + _length_prefixed(kind.value.encode("ascii")) + _length_prefixed(scope)


_UNSCOPED_PREFIXES = {kind: _build_prefix(kind, None) for kind in IdentifierKind}


@functools.lru_cache(maxsize=4096)
def _partner_prefix(partner_id: int) -> bytes:
    return _build_prefix(IdentifierKind.PARTNER_USER_ID, partner_id)


def _check_kind(kind: object) -> None:
    if not isinstance(kind, IdentifierKind):
        raise TypeError("kind must be an IdentifierKind")


def domain_prefix(kind: IdentifierKind, partner_id: int | None) -> bytes:
    """Everything in ``domain_tagged`` before the value, for callers that hash many values."""
    _check_kind(kind)
    _check_partner_scope(kind, partner_id)
    return _UNSCOPED_PREFIXES[kind] if partner_id is None else _partner_prefix(partner_id)


@dataclass(frozen=True, slots=True)
class NormalizedIdentifier:
    """An identifier in canonical form, with its kind and (for partner user ids) its partner.

    Build it with ``normalize``; constructing one by hand skips the normalization rules.
    """

    kind: IdentifierKind
    value: str = field(repr=False)
    partner_id: int | None = None

    def __post_init__(self) -> None:
        _check_kind(self.kind)
        _check_partner_scope(self.kind, self.partner_id)
        if not isinstance(self.value, str) or not self.value:
            raise _invalid(self.kind, f"{self.kind.value} must be non-empty text")

    def __repr__(self) -> str:
        return f"NormalizedIdentifier(kind={self.kind.value!r}, partner_id={self.partner_id!r}, value=<hidden>)"

    def domain_tagged(self) -> bytes:
        """Length-prefixed (tag, kind, partner scope, value): no two identifiers share an encoding.

        So the same text as an email and as a customer id, or as two partners' user ids,
        never yields the same pseudonym.
        """
        # Kind and scope were checked in __post_init__; this is the per-pseudonym hot path.
        partner_id = self.partner_id
        prefix = _UNSCOPED_PREFIXES[self.kind] if partner_id is None else _partner_prefix(partner_id)
        encoded = self.value.encode()
        return prefix + len(encoded).to_bytes(4, "big") + encoded


# --- scalar normalizers --------------------------------------------------------------------


def _require_text(kind: IdentifierKind, raw: object) -> str:
    if not isinstance(raw, str):
        raise _invalid(kind, f"{kind.value} must be text")
    return raw


def _has_forbidden_chars(text: str) -> bool:
    if text.isascii():
        return _ASCII_CONTROL_RE.search(text) is not None
    return any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in text)


def normalize_email(raw: str, rules: NormalizationRules = DEFAULT_RULES) -> str:
    """Trim, optionally strip ``+tag``, check a dot-atom ``local@domain.tld`` syntax, lower-case."""
    kind = IdentifierKind.EMAIL
    text = _require_text(kind, raw).strip(SURROUNDING_WHITESPACE)
    if not text:
        raise _invalid(kind, "email is empty")
    if len(text) > MAX_EMAIL_LENGTH:
        raise _invalid(kind, f"email is longer than {MAX_EMAIL_LENGTH} characters")
    if rules.plus_tag is PlusTagRule.STRIP:
        text = _PLUS_TAG_RE.sub(r"\1@", text, count=1)
    if _EMAIL_RE.fullmatch(text) is None:
        raise _invalid(kind, "email is not a valid ASCII address of the form local@domain.tld")
    if text.index("@") > MAX_EMAIL_LOCAL_LENGTH:
        raise _invalid(kind, f"email local part is longer than {MAX_EMAIL_LOCAL_LENGTH} characters")
    return text.lower()


def normalize_phone(raw: str, rules: NormalizationRules = DEFAULT_RULES) -> str:
    """E.164 (``+4930123456``) of a valid number; numbers without ``+`` read in the default region.

    Extensions (and any letters) are refused rather than dropped: ``…-0`` and ``…-17`` are different people
    behind one switchboard, and merging them would link strangers.
    """
    kind = IdentifierKind.PHONE
    text = _require_text(kind, raw).strip(SURROUNDING_WHITESPACE)
    if not text:
        raise _invalid(kind, "phone is empty")
    if len(text) > MAX_PHONE_INPUT_LENGTH:
        raise _invalid(kind, f"phone is longer than {MAX_PHONE_INPUT_LENGTH} characters")
    if _PHONE_CHARS_RE.fullmatch(text) is None:
        raise _invalid(kind, "phone may contain only digits, spaces and + - ( ) . /")
    try:
        number = phonenumbers.parse(text, rules.default_phone_region)
    except phonenumbers.NumberParseException:
        raise _invalid(kind, "phone cannot be parsed as a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise _invalid(kind, "phone is not a valid number for its country")
    if number.extension:
        raise _invalid(kind, "phone has an extension; extensions are not accepted")
    e164: str = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164


def _normalize_opaque(raw: object, kind: IdentifierKind, max_length: int) -> str:
    text = unicodedata.normalize("NFC", _require_text(kind, raw)).strip(SURROUNDING_WHITESPACE)
    if not text:
        raise _invalid(kind, f"{kind.value} is empty")
    if len(text) > max_length:
        raise _invalid(kind, f"{kind.value} is longer than {max_length} characters")
    if _has_forbidden_chars(text):
        raise _invalid(kind, f"{kind.value} contains control or invisible formatting characters")
    return text


def normalize_device_id(raw: str) -> str:
    """Trim; hex and UUID forms lower-cased; all-zero placeholders and inner whitespace refused.

    An all-zero advertising id is what a device reports when tracking is limited: accepting
    it would merge every such person into one profile.
    """
    kind = IdentifierKind.DEVICE_ID
    text = _normalize_opaque(raw, kind, MAX_DEVICE_ID_LENGTH)
    if any(char.isspace() for char in text):
        raise _invalid(kind, "device_id contains whitespace")
    if _HEXLIKE_RE.match(text) is not None:
        if _ZERO_PLACEHOLDER_RE.match(text) is not None:
            raise _invalid(kind, "device_id is an all-zero placeholder")
        text = text.lower()
    return text


def normalize_customer_id(raw: str) -> str:
    """Trim, Unicode NFC, 1..256 characters, no control or format characters; case is kept."""
    return _normalize_opaque(raw, IdentifierKind.CUSTOMER_ID, MAX_CUSTOMER_ID_LENGTH)


def normalize_partner_user_id(raw: str) -> str:
    """Like a customer id; the partner scope is carried by ``NormalizedIdentifier``."""
    return _normalize_opaque(raw, IdentifierKind.PARTNER_USER_ID, MAX_PARTNER_USER_ID_LENGTH)


def normalize_value(kind: IdentifierKind, raw: str, rules: NormalizationRules = DEFAULT_RULES) -> str:
    """The canonical text of ``raw`` read as ``kind``."""
    _check_kind(kind)
    if kind is IdentifierKind.EMAIL:
        return normalize_email(raw, rules)
    if kind is IdentifierKind.PHONE:
        return normalize_phone(raw, rules)
    if kind is IdentifierKind.DEVICE_ID:
        return normalize_device_id(raw)
    if kind is IdentifierKind.CUSTOMER_ID:
        return normalize_customer_id(raw)
    return normalize_partner_user_id(raw)


def normalize(
    kind: IdentifierKind,
    raw: str,
    *,
    partner_id: int | None = None,
    rules: NormalizationRules = DEFAULT_RULES,
) -> NormalizedIdentifier:
    """Normalize ``raw`` as ``kind``; ``partner_id`` is required exactly for partner user ids."""
    _check_partner_scope(kind, partner_id)
    return NormalizedIdentifier(kind, normalize_value(kind, raw, rules), partner_id)


# --- column normalizers (null where invalid) ---------------------------------------------------


def _email_expr(column: pl.Expr, rules: NormalizationRules) -> pl.Expr:
    text = column.str.strip_chars(SURROUNDING_WHITESPACE)
    if rules.plus_tag is PlusTagRule.STRIP:
        text = text.str.replace(PLUS_TAG_PATTERN, "${1}@")
    valid = (
        (text.str.len_chars() <= MAX_EMAIL_LENGTH)
        & text.str.contains(EMAIL_PATTERN)
        # Valid addresses are ASCII, so the byte offset of "@" is the local part's length.
        & (text.str.find("@", literal=True) <= MAX_EMAIL_LOCAL_LENGTH)
    )
    return pl.when(valid).then(text.str.to_lowercase()).otherwise(None)


# In the column forms below, ``text`` is the only subexpression used more than once: a lazy query
# then Unicode-normalizes each value once (common subexpressions are shared one level deep only,
# and NFC costs about a microsecond a value).


def _opaque_expr(column: pl.Expr, max_length: int) -> tuple[pl.Expr, pl.Expr]:
    text = column.str.normalize("NFC").str.strip_chars(SURROUNDING_WHITESPACE)
    valid = text.str.len_chars().is_between(1, max_length) & ~text.str.contains(FORBIDDEN_CHARS_PATTERN)
    return text, valid


def _device_id_expr(column: pl.Expr) -> pl.Expr:
    text, valid = _opaque_expr(column, MAX_DEVICE_ID_LENGTH)
    valid = valid & ~text.str.contains(INNER_WHITESPACE_PATTERN)
    hex_form = pl.when(text.str.contains(ZERO_PLACEHOLDER_PATTERN)).then(None).otherwise(text.str.to_lowercase())
    canonical = pl.when(text.str.contains(HEXLIKE_PATTERN)).then(hex_form).otherwise(text)
    return pl.when(valid).then(canonical).otherwise(None)


def _phone_or_none(raw: str, rules: NormalizationRules) -> str | None:
    try:
        return normalize_phone(raw, rules)
    except InvalidIdentifier:
        return None


def _phones_batch(rules: NormalizationRules) -> Callable[[pl.Series], pl.Series]:
    def normalize_batch(series: pl.Series) -> pl.Series:
        # phonenumbers works one value at a time; parse each distinct value only once.
        distinct = series.drop_nulls().unique()
        mapping = {value: _phone_or_none(value, rules) for value in distinct.to_list()}
        return series.replace_strict(mapping, default=None, return_dtype=pl.String)

    return normalize_batch


def normalized_expr(kind: IdentifierKind, column: pl.Expr, rules: NormalizationRules = DEFAULT_RULES) -> pl.Expr:
    """A whole-column expression with the same rules as ``normalize_value``; null where invalid."""
    _check_kind(kind)
    if kind is IdentifierKind.EMAIL:
        return _email_expr(column, rules)
    if kind is IdentifierKind.PHONE:
        return column.map_batches(_phones_batch(rules), return_dtype=pl.String, is_elementwise=True)
    if kind is IdentifierKind.DEVICE_ID:
        return _device_id_expr(column)
    max_length = MAX_CUSTOMER_ID_LENGTH if kind is IdentifierKind.CUSTOMER_ID else MAX_PARTNER_USER_ID_LENGTH
    text, valid = _opaque_expr(column, max_length)
    return pl.when(valid).then(text).otherwise(None)


def normalize_column(kind: IdentifierKind, series: pl.Series, rules: NormalizationRules = DEFAULT_RULES) -> pl.Series:
    """``series`` normalized as ``kind``: same name and length, null where invalid."""
    if series.dtype == pl.Null:
        series = series.cast(pl.String)
    expression = normalized_expr(kind, pl.col(series.name), rules).alias(series.name)
    return series.to_frame().select(expression).to_series()


def normalize_emails(series: pl.Series, rules: NormalizationRules = DEFAULT_RULES) -> pl.Series:
    return normalize_column(IdentifierKind.EMAIL, series, rules)


def normalize_phones(series: pl.Series, rules: NormalizationRules = DEFAULT_RULES) -> pl.Series:
    return normalize_column(IdentifierKind.PHONE, series, rules)


def normalize_device_ids(series: pl.Series) -> pl.Series:
    return normalize_column(IdentifierKind.DEVICE_ID, series)


def normalize_customer_ids(series: pl.Series) -> pl.Series:
    return normalize_column(IdentifierKind.CUSTOMER_ID, series)


def normalize_partner_user_ids(series: pl.Series) -> pl.Series:
    return normalize_column(IdentifierKind.PARTNER_USER_ID, series)
