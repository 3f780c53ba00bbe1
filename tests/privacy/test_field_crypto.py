"""Field encryption probed as someone who can read and write the database but holds no key."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.field_crypto import (
    DecryptionFailed,
    KeyWrapper,
    MissingDataKey,
    SubjectCipher,
    WrappedKey,
    decrypt_many,
    encrypt_many,
    new_data_key,
    rewrap,
    unwrap_data_key,
    wrap_data_key,
)
from privacy.keyring import KeyPurpose, Keyring, KeyringError, generate_keyring

ANA, BEN = 101, 202
KEY_FOR_PROPERTIES = new_data_key()


@pytest.fixture
def keys() -> Keyring:
    return generate_keyring()


@pytest.fixture
def ana() -> SubjectCipher:
    return SubjectCipher(ANA, new_data_key())


def test_round_trip_and_no_plaintext_in_the_ciphertext(ana: SubjectCipher) -> None:
    blob = ana.encrypt("email", "ana@example.org")
    assert b"ana@example.org" not in blob
    assert b"ana" not in blob
    assert ana.decrypt("email", blob) == "ana@example.org"
    assert blob[0] == 1
    assert len(blob) == 1 + 12 + len("ana@example.org") + 16


@settings(max_examples=100)
@given(st.text(max_size=200))
def test_any_text_round_trips(text: str) -> None:
    cipher = SubjectCipher(ANA, KEY_FOR_PROPERTIES)
    assert cipher.decrypt("name", cipher.encrypt("name", text)) == text


def test_a_ciphertext_copied_to_another_subject_fails() -> None:
    dek = new_data_key()  # even if both subjects had the same key, the subject id is bound
    blob = SubjectCipher(ANA, dek).encrypt("email", "ana@example.org")
    with pytest.raises(DecryptionFailed):
        SubjectCipher(BEN, dek).decrypt("email", blob)


def test_a_ciphertext_copied_to_another_field_fails(ana: SubjectCipher) -> None:
    blob = ana.encrypt("email", "ana@example.org")
    with pytest.raises(DecryptionFailed):
        ana.decrypt("phone", blob)
    with pytest.raises(DecryptionFailed):
        ana.decrypt("emai", blob)


def test_every_tampered_byte_is_detected(ana: SubjectCipher) -> None:
    blob = ana.encrypt("email", "ana@example.org")
    for position in range(len(blob)):
        for flip in (0x01, 0x80):
            tampered = bytearray(blob)
            tampered[position] ^= flip
            with pytest.raises(DecryptionFailed):
                ana.decrypt("email", bytes(tampered))


def test_truncated_or_extended_ciphertexts_fail(ana: SubjectCipher) -> None:
    blob = ana.encrypt("email", "ana@example.org")
    for probe in (b"", blob[:1], blob[:13], blob[:29], blob[:-1], blob + b"\x00", b"\x02" + blob[1:]):
        with pytest.raises(DecryptionFailed):
            ana.decrypt("email", probe)


def test_the_wrong_data_key_fails(ana: SubjectCipher) -> None:
    blob = ana.encrypt("email", "ana@example.org")
    with pytest.raises(DecryptionFailed):
        SubjectCipher(ANA, new_data_key()).decrypt("email", blob)


def test_errors_say_nothing(ana: SubjectCipher) -> None:
    with pytest.raises(DecryptionFailed) as caught:
        ana.decrypt("email", SubjectCipher(BEN, new_data_key()).encrypt("email", "ben@example.org"))
    assert str(caught.value) == "decryption failed"
    assert caught.value.__cause__ is None


def test_unencodable_text_is_refused_without_echoing_it(ana: SubjectCipher) -> None:
    with pytest.raises(ValueError, match="email is not valid Unicode text") as caught:
        ana.encrypt("email", "ana\ud800@example.org")
    assert "ana" not in str(caught.value)


def test_nonces_are_unique_across_many_encryptions(ana: SubjectCipher) -> None:
    nonces = {ana.encrypt("email", "same value")[1:13] for _ in range(50_000)}
    assert len(nonces) == 50_000


def test_same_value_encrypts_differently_each_time(ana: SubjectCipher) -> None:
    assert ana.encrypt("email", "x") != ana.encrypt("email", "x")


# --- wrapped data keys ---------------------------------------------------------------------------


def test_wrapped_key_round_trip_and_binding_to_its_subject(keys: Keyring) -> None:
    dek = new_data_key()
    wrapped = wrap_data_key(dek, ANA, keys)
    assert wrapped.kek_version == 1
    assert dek not in wrapped.blob
    assert unwrap_data_key(wrapped, ANA, keys) == dek
    with pytest.raises(DecryptionFailed):
        unwrap_data_key(wrapped, BEN, keys)


def test_a_wrapped_key_with_a_forged_version_or_altered_blob_fails(keys: Keyring) -> None:
    rotated = keys.with_new_version(KeyPurpose.KEK)
    wrapper = KeyWrapper(rotated)
    wrapped = wrapper.wrap(new_data_key(), ANA)
    with pytest.raises(DecryptionFailed):
        wrapper.unwrap(WrappedKey(1, wrapped.blob), ANA)
    for position in range(len(wrapped.blob)):
        altered = bytearray(wrapped.blob)
        altered[position] ^= 0x01
        with pytest.raises(DecryptionFailed):
            wrapper.unwrap(WrappedKey(wrapped.kek_version, bytes(altered)), ANA)
    with pytest.raises(DecryptionFailed):
        wrapper.unwrap(WrappedKey(wrapped.kek_version, wrapped.blob[:-1]), ANA)


def test_another_keyring_cannot_unwrap(keys: Keyring) -> None:
    wrapped = wrap_data_key(new_data_key(), ANA, keys)
    with pytest.raises(DecryptionFailed):
        unwrap_data_key(wrapped, ANA, generate_keyring())


def test_kek_rotation_rewraps_keys_and_the_old_kek_can_then_be_retired(keys: Keyring) -> None:
    subjects = {ANA: new_data_key(), BEN: new_data_key()}
    stored_keys = {s: wrap_data_key(dek, s, keys) for s, dek in subjects.items()}
    stored_fields = {s: SubjectCipher(s, dek).encrypt("email", f"{s}@example.org") for s, dek in subjects.items()}

    rotated = keys.with_new_version(KeyPurpose.KEK)
    stored_keys = {s: rewrap(w, s, rotated) for s, w in stored_keys.items()}
    assert {w.kek_version for w in stored_keys.values()} == {2}

    retired = rotated.without_version(KeyPurpose.KEK, 1)
    for subject, wrapped in stored_keys.items():
        dek = unwrap_data_key(wrapped, subject, retired)
        assert SubjectCipher(subject, dek).decrypt("email", stored_fields[subject]) == f"{subject}@example.org"


def test_a_key_left_unrewrapped_is_reported_as_a_keyring_problem(keys: Keyring) -> None:
    wrapped = wrap_data_key(new_data_key(), ANA, keys)
    retired = keys.with_new_version(KeyPurpose.KEK).without_version(KeyPurpose.KEK, 1)
    with pytest.raises(KeyringError, match="no kek key version 1"):
        unwrap_data_key(wrapped, ANA, retired)


def test_rewrap_is_idempotent_but_still_verifies(keys: Keyring) -> None:
    wrapped = wrap_data_key(new_data_key(), ANA, keys)
    assert rewrap(wrapped, ANA, keys) is wrapped
    with pytest.raises(DecryptionFailed):
        rewrap(wrapped, BEN, keys)


def test_crypto_shredding_leaves_a_backup_unreadable(keys: Keyring) -> None:
    dek = new_data_key()
    backed_up_field = SubjectCipher(ANA, dek).encrypt("email", "ana@example.org")
    wrapped = wrap_data_key(dek, ANA, keys)
    assert unwrap_data_key(wrapped, ANA, keys) == dek
    del dek, wrapped  # erasure: the wrapped DEK is deleted; only the backed-up field remains
    # Holding the backup and even the whole keyring, the attacker has nothing to unwrap.
    for guess in (new_data_key(), bytes(32), keys.current_key(KeyPurpose.KEK).secret):
        with pytest.raises(DecryptionFailed):
            SubjectCipher(ANA, guess).decrypt("email", backed_up_field)


# --- bulk -----------------------------------------------------------------------------------------


def test_bulk_encrypt_and_decrypt_match_the_single_path() -> None:
    deks = {ANA: new_data_key(), BEN: new_data_key()}
    items = [(ANA, "email", "ana@x.org"), (BEN, "email", "ben@x.org"), (ANA, "phone", "+49301234567")]
    blobs = encrypt_many(items, deks)
    assert SubjectCipher(ANA, deks[ANA]).decrypt("phone", blobs[2]) == "+49301234567"
    assert decrypt_many([(s, f, b) for (s, f, _), b in zip(items, blobs, strict=True)], deks) == [
        v for _, _, v in items
    ]
    with pytest.raises(DecryptionFailed):  # rows swapped between subjects
        decrypt_many([(BEN, "email", blobs[0])], deks)


def test_bulk_with_a_shredded_key_names_the_item_not_the_subject() -> None:
    deks = {ANA: new_data_key()}
    with pytest.raises(MissingDataKey, match="item 1 ") as caught:
        encrypt_many([(ANA, "email", "a@x.org"), (BEN, "email", "b@x.org")], deks)
    assert "b@x.org" not in str(caught.value)


def test_no_key_material_in_reprs(keys: Keyring) -> None:
    dek = new_data_key()
    wrapped = wrap_data_key(dek, ANA, keys)
    kek = keys.current_key(KeyPurpose.KEK).secret
    for text in (repr(SubjectCipher(ANA, dek)), repr(wrapped), repr(KeyWrapper(keys))):
        for secret in (dek, kek, wrapped.blob):
            assert secret.hex() not in text
            assert repr(secret) not in text


@pytest.mark.parametrize("dek", [b"", bytes(16), bytes(33)])
def test_data_keys_must_be_256_bits(dek: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SubjectCipher(ANA, dek)
