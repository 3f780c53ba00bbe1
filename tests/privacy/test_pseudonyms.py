"""Identifier pseudonyms: keyed, stable, and never shared across kinds, partners or keys."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.identifiers import IdentifierKind, NormalizedIdentifier, normalize
from privacy.keyring import KeyPurpose, Keyring, KeyringError, generate_keyring
from privacy.pseudonyms import Pseudonym, Pseudonymizer

ANA = normalize(IdentifierKind.EMAIL, "ana@example.org")
KEYS_FOR_PROPERTIES = generate_keyring()  # hypothesis runs many examples under one fixture-free keyring


@pytest.fixture
def keys() -> Keyring:
    return generate_keyring()


def test_same_identifier_gives_the_same_pseudonym(keys: Keyring) -> None:
    first = Pseudonymizer(keys).pseudonym(ANA)
    again = Pseudonymizer(keys).pseudonym(normalize(IdentifierKind.EMAIL, "  ANA@example.ORG "))
    assert first == again
    assert first.key_version == keys.current[KeyPurpose.IDENTIFIER_HMAC]
    assert len(first.digest) == 32


def test_it_is_hmac_sha256_of_the_domain_tagged_identifier(keys: Keyring) -> None:
    secret = keys.current_key(KeyPurpose.IDENTIFIER_HMAC).secret
    expected = hmac.new(secret, ANA.domain_tagged(), hashlib.sha256).digest()
    assert Pseudonymizer(keys).pseudonym(ANA).digest == expected


def test_an_unkeyed_hash_of_the_email_does_not_match(keys: Keyring) -> None:
    digest = Pseudonymizer(keys).pseudonym(ANA).digest
    guesses = [hashlib.sha256(b"ana@example.org").digest(), hashlib.sha256(ANA.domain_tagged()).digest()]
    assert digest not in guesses


def test_another_keyring_gives_unrelated_pseudonyms(keys: Keyring) -> None:
    assert Pseudonymizer(keys).pseudonym(ANA) != Pseudonymizer(generate_keyring()).pseudonym(ANA)


def test_same_text_as_email_and_as_customer_id_differ(keys: Keyring) -> None:
    pseudonymizer = Pseudonymizer(keys)
    as_email = pseudonymizer.pseudonym(NormalizedIdentifier(IdentifierKind.EMAIL, "ana@example.org"))
    as_customer = pseudonymizer.pseudonym(NormalizedIdentifier(IdentifierKind.CUSTOMER_ID, "ana@example.org"))
    assert as_email.digest != as_customer.digest


def test_one_user_id_at_two_partners_gives_two_pseudonyms(keys: Keyring) -> None:
    pseudonymizer = Pseudonymizer(keys)
    at_one = pseudonymizer.pseudonym(normalize(IdentifierKind.PARTNER_USER_ID, "u-42", partner_id=1))
    at_two = pseudonymizer.pseudonym(normalize(IdentifierKind.PARTNER_USER_ID, "u-42", partner_id=2))
    assert at_one.digest != at_two.digest


def test_rotation_keeps_old_pseudonyms_findable(keys: Keyring) -> None:
    before = Pseudonymizer(keys).pseudonym(ANA)
    rotated = keys.with_new_version(KeyPurpose.IDENTIFIER_HMAC)
    pseudonymizer = Pseudonymizer(rotated)
    after = pseudonymizer.pseudonym(ANA)
    assert after.key_version == before.key_version + 1
    assert after.digest != before.digest
    candidates = pseudonymizer.pseudonyms_for_all_versions(ANA)
    assert candidates[0] == after
    assert before in candidates
    assert len(candidates) == 2


def test_a_retired_key_version_cannot_be_asked_for(keys: Keyring) -> None:
    rotated = keys.with_new_version(KeyPurpose.IDENTIFIER_HMAC).without_version(KeyPurpose.IDENTIFIER_HMAC, 1)
    pseudonymizer = Pseudonymizer(rotated)
    assert [p.key_version for p in pseudonymizer.pseudonyms_for_all_versions(ANA)] == [2]
    with pytest.raises(KeyringError):
        pseudonymizer.pseudonym(ANA, key_version=1)


@settings(max_examples=50, deadline=None)
@given(
    st.sampled_from(list(IdentifierKind)),
    st.lists(st.text(min_size=1, max_size=30), max_size=30),
    st.integers(min_value=1, max_value=2**63 - 1),
)
def test_bulk_digests_equal_one_by_one_pseudonyms(kind: IdentifierKind, values: list[str], partner: int) -> None:
    pseudonymizer = Pseudonymizer(KEYS_FOR_PROPERTIES)
    partner_id = partner if kind is IdentifierKind.PARTNER_USER_ID else None
    expected = [pseudonymizer.pseudonym(NormalizedIdentifier(kind, v, partner_id)).digest for v in values]
    assert pseudonymizer.digest_many(kind, values, partner_id) == expected


def test_bulk_digests_under_an_older_version(keys: Keyring) -> None:
    before = Pseudonymizer(keys).pseudonym(ANA)
    pseudonymizer = Pseudonymizer(keys.with_new_version(KeyPurpose.IDENTIFIER_HMAC))
    assert pseudonymizer.digest_many(IdentifierKind.EMAIL, [ANA.value], key_version=1) == [before.digest]


def test_bulk_refuses_empty_values_and_missing_partner_scope(keys: Keyring) -> None:
    pseudonymizer = Pseudonymizer(keys)
    with pytest.raises(ValueError, match=r"values\[1\] is empty"):
        pseudonymizer.digest_many(IdentifierKind.EMAIL, ["a@b.cd", ""])
    with pytest.raises(ValueError, match="partner"):
        pseudonymizer.digest_many(IdentifierKind.PARTNER_USER_ID, ["u-1"])


def test_nothing_secret_or_linkable_in_reprs(keys: Keyring) -> None:
    pseudonymizer = Pseudonymizer(keys)
    pseudonym = pseudonymizer.pseudonym(ANA)
    secret = keys.current_key(KeyPurpose.IDENTIFIER_HMAC).secret
    for text in (repr(pseudonym), str(pseudonym), repr(pseudonymizer)):
        assert pseudonym.digest.hex() not in text
        assert secret.hex() not in text
        assert repr(secret) not in text
    assert repr(Pseudonym(1, b"\x01" * 32)) == "Pseudonym(key_version=1, digest=<32 bytes>)"
