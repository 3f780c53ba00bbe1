"""Normalization: one spelling per identifier, and rejections that never repeat the input."""

from __future__ import annotations

import phonenumbers
import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from privacy.identifiers import (
    SURROUNDING_WHITESPACE,
    IdentifierKind,
    InvalidIdentifier,
    NormalizationRules,
    NormalizedIdentifier,
    PlusTagRule,
    normalize,
    normalize_column,
    normalize_customer_id,
    normalize_device_id,
    normalize_email,
    normalize_emails,
    normalize_phone,
    normalize_phones,
    normalize_value,
    normalized_expr,
)

STRIP_TAGS = NormalizationRules(plus_tag=PlusTagRule.STRIP)
ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-"
LABEL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

atoms = st.text(alphabet=ATEXT, min_size=1, max_size=12)
local_parts = st.lists(atoms, min_size=1, max_size=3).map(".".join)
labels = st.builds(
    lambda head, middle, tail: head + middle + tail,
    st.sampled_from(LABEL_CHARS),
    st.text(alphabet=LABEL_CHARS + "-", max_size=8),
    st.sampled_from(LABEL_CHARS),
)
top_labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=6)
domains = st.builds(lambda labs, top: ".".join([*labs, top]), st.lists(labels, min_size=1, max_size=3), top_labels)
emails = st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains)
surrounding = st.text(alphabet=SURROUNDING_WHITESPACE, max_size=3)

# Text likely to hit every rule: ASCII, lookalikes, whitespace, controls, format characters.
odd_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("aZ09@.+-_ ")),
        st.sampled_from(list(SURROUNDING_WHITESPACE)),
        st.sampled_from(["\x00", "\x1f", "\x7f", "\x85", "\u200b", "\u200e", "\u2028", "\ufeff", "\u0301"]),
        st.sampled_from(["é", "e", "İ", "K", "ß", "Σ", "\u2000", "\uff10"]),
        st.characters(codec="utf-8"),
    ),
    max_size=40,
)
ALL_KINDS = list(IdentifierKind)


def normalize_or_none(kind: IdentifierKind, raw: str, rules: NormalizationRules) -> str | None:
    try:
        return normalize_value(kind, raw, rules)
    except InvalidIdentifier:
        return None


# --- emails -------------------------------------------------------------------------------------


@given(emails, surrounding, surrounding)
def test_email_ignores_case_and_surrounding_whitespace(email: str, before: str, after: str) -> None:
    assume(len(email) <= 64)
    expected = normalize_email(email)
    assert normalize_email(before + email.upper() + after) == expected
    assert normalize_email(email.swapcase()) == expected
    assert expected == email.lower()


@given(emails)
def test_plus_tag_is_kept_by_default_and_stripped_when_configured(email: str) -> None:
    assume(len(email) <= 64)
    local, domain = email.split("@")
    assume("+" not in local and local[-1] != ".")
    tagged = f"{local}+News.2024@{domain}"
    assert normalize_email(tagged) == tagged.lower()
    assert normalize_email(tagged, STRIP_TAGS) == email.lower()


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "ana", "ana@", "@example.org", "ana@example", "ana@@example.org", "ana@exa mple.org",
     "an a@example.org", ".ana@example.org", "ana.@example.org", "a..na@example.org", "ana@-example.org",
     "ana@example.org.", "ana@example.1", "ana@exämple.org", "änä@example.org", "ana@example.org\x00",
     "a" * 65 + "@example.org", "ana@" + "a" * 250 + ".org"],
)  # fmt: skip
def test_malformed_emails_are_refused_with_a_stable_code(raw: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        normalize_email(raw)
    assert caught.value.code == "INVALID_EMAIL"
    assert caught.value.kind is IdentifierKind.EMAIL


def test_internationalized_domain_is_accepted_in_its_ascii_form() -> None:
    assert normalize_email("Ana@XN--exmple-cua.org") == "ana@xn--exmple-cua.org"


# --- phones -------------------------------------------------------------------------------------

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)


@st.composite
def valid_numbers(draw: st.DrawFn) -> phonenumbers.PhoneNumber:
    region = draw(st.sampled_from(REGIONS))
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    example = example or phonenumbers.example_number(region)
    assume(example is not None)
    assert example is not None
    national = str(example.national_number)
    tail = draw(st.text(alphabet="0123456789", min_size=1, max_size=min(4, len(national) - 1)))
    candidate = phonenumbers.parse(f"+{example.country_code}{national[: -len(tail)]}{tail}", None)
    candidate.italian_leading_zero = example.italian_leading_zero
    candidate.number_of_leading_zeros = example.number_of_leading_zeros
    e164 = phonenumbers.format_number(candidate, phonenumbers.PhoneNumberFormat.E164)
    candidate = phonenumbers.parse(e164, None)
    assume(phonenumbers.is_valid_number(candidate))
    return candidate


def e164(number: phonenumbers.PhoneNumber) -> str:
    text: str = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(valid_numbers(), valid_numbers())
def test_distinct_valid_e164_numbers_never_collapse(first: phonenumbers.PhoneNumber,
                                                    second: phonenumbers.PhoneNumber) -> None:  # fmt: skip
    a, b = e164(first), e164(second)
    assert normalize_phone(a) == a
    assert normalize_phone(b) == b
    assert (normalize_phone(a) == normalize_phone(b)) == (a == b)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(valid_numbers())
def test_every_written_form_of_a_number_gives_its_e164(number: phonenumbers.PhoneNumber) -> None:
    expected = e164(number)
    international = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    assert normalize_phone(international) == expected
    assert normalize_phone(" " + international + "\t") == expected
    region = phonenumbers.region_code_for_number(number)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    assume(region in phonenumbers.SUPPORTED_REGIONS)
    assert normalize_phone(national, NormalizationRules(default_phone_region=region)) == expected


def test_national_numbers_read_in_the_configured_region() -> None:
    assert normalize_phone("030 1234567") == "+49301234567"
    assert normalize_phone("(650) 253-0000", NormalizationRules(default_phone_region="US")) == "+16502530000"
    with pytest.raises(InvalidIdentifier) as caught:
        normalize_phone("030 1234567", NormalizationRules(default_phone_region=None))
    assert caught.value.code == "INVALID_PHONE"


@pytest.mark.parametrize("raw", ["", "12", "+49 30", "+999 1234567", "not a number", "+49 30 1234567 ext. 12"])
def test_invalid_phones_are_refused(raw: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        normalize_phone(raw)
    assert caught.value.code == "INVALID_PHONE"


def test_an_unknown_default_region_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="default_phone_region"):
        NormalizationRules(default_phone_region="XX")


# --- device, customer and partner user ids ----------------------------------------------------


def test_device_ids_in_hex_and_uuid_form_are_lower_cased_others_keep_case() -> None:
    assert normalize_device_id(" 6D92078A-8246-4BA4-AE5B-76104861E7DC ") == "6d92078a-8246-4ba4-ae5b-76104861e7dc"
    assert normalize_device_id("ABCDEF0123") == "abcdef0123"
    assert normalize_device_id("Android-Xy_12") == "Android-Xy_12"


@pytest.mark.parametrize(
    "raw", ["", "  ", "00000000-0000-0000-0000-000000000000", "0000", "a b", "ab\x00", "a\u200bb", "x" * 129]
)
def test_device_id_placeholders_blanks_and_invisibles_are_refused(raw: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        normalize_device_id(raw)
    assert caught.value.code == "INVALID_DEVICE_ID"


def test_customer_ids_are_nfc_trimmed_and_keep_case() -> None:
    assert normalize_customer_id("  Cafe\u0301-42 ") == "Café-42"
    assert normalize_customer_id("AbC") != normalize_customer_id("abc")


@pytest.mark.parametrize(
    ("kind", "code"),
    [(IdentifierKind.CUSTOMER_ID, "INVALID_CUSTOMER_ID"), (IdentifierKind.PARTNER_USER_ID, "INVALID_PARTNER_USER_ID")],
)
@pytest.mark.parametrize("raw", ["", " \t ", "a\x07b", "a\u202eb", "a\u2028b", "x" * 257])
def test_opaque_ids_refuse_blank_invisible_and_over_long(kind: IdentifierKind, code: str, raw: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        normalize(kind, raw, partner_id=7 if kind is IdentifierKind.PARTNER_USER_ID else None)
    assert caught.value.code == code


# --- properties over every kind ----------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ALL_KINDS), st.one_of(odd_text, emails), st.sampled_from([STRIP_TAGS, NormalizationRules()]))
def test_normalizers_are_idempotent(kind: IdentifierKind, raw: str, rules: NormalizationRules) -> None:
    once = normalize_or_none(kind, raw, rules)
    assume(once is not None)
    assert once is not None
    assert normalize_value(kind, once, rules) == once


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ALL_KINDS), odd_text)
def test_a_rejection_never_repeats_the_input(kind: IdentifierKind, raw: str) -> None:
    marked = f"Qz{raw}Xq7"  # a marker no message contains, so a substring hit is a real echo
    with pytest.raises(InvalidIdentifier) as caught:
        normalize_value(kind, marked + "\x00")  # NUL is refused by every kind
    error = caught.value
    texts = [str(error), repr(error), error.message, *map(str, error.args)]
    assert not any(marked in text or "Qz" in text for text in texts)
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


@settings(max_examples=200, deadline=None)
@given(emails, odd_text)
def test_an_invalid_email_is_not_echoed(email: str, junk: str) -> None:
    raw = f"{email}@{junk}"
    with pytest.raises(InvalidIdentifier) as caught:
        normalize_email(raw)
    assert email not in str(caught.value)
    assert email not in repr(caught.value)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["+49 30 1234567 ext. 99", "+4930", "0301234567890123456"]))
def test_phone_errors_do_not_chain_the_parser_exception(raw: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        normalize_phone(raw)
    assert raw not in str(caught.value)
    assert caught.value.__cause__ is None


# --- columns agree with scalars ----------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([k for k in ALL_KINDS if k is not IdentifierKind.PHONE]),
    st.lists(st.one_of(st.none(), odd_text, emails, emails.map(str.upper)), max_size=20),
    st.sampled_from([STRIP_TAGS, NormalizationRules()]),
)
def test_column_normalizers_agree_with_scalar_ones(
    kind: IdentifierKind, values: list[str | None], rules: NormalizationRules
) -> None:
    expected = [None if value is None else normalize_or_none(kind, value, rules) for value in values]
    series = pl.Series("identifier", values, dtype=pl.String)
    assert normalize_column(kind, series, rules).to_list() == expected


# Hex-like text, placeholders among it, with what makes an identifier invalid or Unicode-normalized.
hexish_text = st.text(alphabet=st.sampled_from([*"0fF9a-", " ", "\u200b", "\u0301", "\u00e9"]), max_size=10)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([k for k in ALL_KINDS if k is not IdentifierKind.PHONE]),
    st.lists(st.one_of(st.none(), hexish_text, odd_text), max_size=20),
)
def test_column_normalizers_agree_with_scalar_ones_in_an_optimized_query(
    kind: IdentifierKind, values: list[str | None]
) -> None:
    """Ingestion runs them in one lazy query, where the optimizer computes shared subexpressions once."""
    expected = [None if value is None else normalize_or_none(kind, value, NormalizationRules()) for value in values]
    query = pl.LazyFrame({"identifier": values}, schema={"identifier": pl.String}).select(
        normalized_expr(kind, pl.col("identifier"))
    )
    assert query.collect(engine="in-memory").to_series().to_list() == expected


def test_device_id_placeholders_are_refused_in_columns_too() -> None:
    values = ["0000", "00000000-0000-0000-0000-000000000000", " 0-0 ", "0-", "-0", "0--0", "0A-0"]
    expected = [None, None, None, "0-", "-0", "0--0", "0a-0"]
    series = pl.Series("device", values, dtype=pl.String)
    lazy = series.to_frame().lazy().select(normalized_expr(IdentifierKind.DEVICE_ID, pl.col("device")))
    assert normalize_column(IdentifierKind.DEVICE_ID, series).to_list() == expected
    assert lazy.collect(engine="in-memory").to_series().to_list() == expected
    assert [normalize_or_none(IdentifierKind.DEVICE_ID, v, NormalizationRules()) for v in values] == expected


def test_phone_column_agrees_with_scalar_phones() -> None:
    values = ["030 1234567", "+49 30 1234567", "0049301234567", "nope", None, "+1 650 253 0000", "030 1234567"]
    expected = ["+49301234567", "+49301234567", "+49301234567", None, None, "+16502530000", "+49301234567"]
    assert normalize_phones(pl.Series("phone", values)).to_list() == expected
    one_by_one = [
        None if v is None else normalize_or_none(IdentifierKind.PHONE, v, NormalizationRules()) for v in values
    ]
    assert one_by_one == expected


def test_email_column_keeps_name_and_length() -> None:
    result = normalize_emails(pl.Series("email", [" Ana@Example.org ", "bad", None]))
    assert result.name == "email"
    assert result.to_list() == ["ana@example.org", None, None]


# --- the normalized identifier ------------------------------------------------------------------


def test_partner_user_ids_need_their_partner_and_others_refuse_one() -> None:
    with pytest.raises(InvalidIdentifier) as missing:
        normalize(IdentifierKind.PARTNER_USER_ID, "u-1")
    assert missing.value.code == "INVALID_PARTNER_USER_ID"
    with pytest.raises(InvalidIdentifier) as extra:
        normalize(IdentifierKind.EMAIL, "ana@example.org", partner_id=3)
    assert extra.value.code == "INVALID_EMAIL"
    with pytest.raises(InvalidIdentifier):
        NormalizedIdentifier(IdentifierKind.PARTNER_USER_ID, "u-1", 0)


def test_repr_hides_the_value() -> None:
    identifier = normalize(IdentifierKind.EMAIL, "ana@example.org")
    assert "ana" not in repr(identifier)
    assert "ana" not in str(identifier)


identifiers = st.one_of(
    st.builds(
        NormalizedIdentifier,
        st.sampled_from([k for k in ALL_KINDS if k is not IdentifierKind.PARTNER_USER_ID]),
        st.text(min_size=1, max_size=8),
        st.none(),
    ),
    st.builds(
        NormalizedIdentifier,
        st.just(IdentifierKind.PARTNER_USER_ID),
        st.text(min_size=1, max_size=8),
        st.integers(min_value=1, max_value=2**63 - 1),
    ),
)


@given(identifiers, identifiers)
def test_domain_tagged_encoding_is_unambiguous(a: NormalizedIdentifier, b: NormalizedIdentifier) -> None:
    assert (a.domain_tagged() == b.domain_tagged()) == (a == b)


def test_same_text_under_different_kinds_or_partners_encodes_differently() -> None:
    email = NormalizedIdentifier(IdentifierKind.EMAIL, "x")
    customer = NormalizedIdentifier(IdentifierKind.CUSTOMER_ID, "x")
    partner_1 = NormalizedIdentifier(IdentifierKind.PARTNER_USER_ID, "x", 1)
    partner_2 = NormalizedIdentifier(IdentifierKind.PARTNER_USER_ID, "x", 2)
    encodings = {i.domain_tagged() for i in (email, customer, partner_1, partner_2)}
    assert len(encodings) == 4


def test_a_plain_string_is_not_accepted_as_a_kind() -> None:
    with pytest.raises(TypeError, match="IdentifierKind"):
        normalize_value("email", "ana@example.org")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="IdentifierKind"):
        NormalizedIdentifier("partner_user_id", "u-1")  # type: ignore[arg-type]
