"""The fingerprint a database keeps of its keyring: it tells keyrings apart, survives rotations,
and holds nothing that is, or opens, a key."""

from __future__ import annotations

from privacy.keyring import KeyPurpose, Keyring, generate_keyring
from privacy.keyring_fingerprint import FINGERPRINTED, belongs, fingerprints, unrecorded


def test_a_keyring_belongs_where_it_was_recorded_and_another_does_not() -> None:
    own, other = generate_keyring(), generate_keyring()
    assert belongs(fingerprints(own), own)
    assert not belongs(fingerprints(own), other)


def test_one_different_key_is_enough_to_refuse() -> None:
    own, other = generate_keyring(), generate_keyring()
    for purpose in FINGERPRINTED:
        mixed = Keyring(keys={**own.keys, purpose: other.keys[purpose]}, current=dict(own.current))
        assert not belongs(fingerprints(own), mixed), purpose


def test_kek_rotation_and_retirement_change_nothing_checked() -> None:
    own = generate_keyring()
    rotated = own.with_new_version(KeyPurpose.KEK).with_new_version(KeyPurpose.KEK)
    retired = rotated.without_version(KeyPurpose.KEK, 1).without_version(KeyPurpose.KEK, 2)
    assert fingerprints(retired) == fingerprints(own)
    assert belongs(fingerprints(own), retired)


def test_new_versions_are_accepted_and_once_recorded_outlive_the_old_ones() -> None:
    own = generate_keyring()
    recorded = fingerprints(own)
    rotated = own
    for purpose in FINGERPRINTED:
        rotated = rotated.with_new_version(purpose)
    assert belongs(recorded, rotated)
    added = unrecorded(recorded, rotated)
    assert {(fp.purpose, fp.version) for fp in added} == {(purpose, 2) for purpose in FINGERPRINTED}
    pruned = rotated
    for purpose in FINGERPRINTED:
        pruned = pruned.without_version(purpose, 1)
    assert not belongs(recorded, pruned), "nothing shared: it cannot be shown to belong"
    assert belongs([*recorded, *added], pruned)


def test_no_fingerprint_is_or_contains_a_key() -> None:
    keyring = generate_keyring()
    secrets = [secret for versions in keyring.keys.values() for secret in versions.values()]
    digests = [fp.digest for fp in fingerprints(keyring)]
    assert len(set(digests)) == len(digests) == len(FINGERPRINTED)
    for digest in digests:
        assert all(digest != secret and digest[:16] not in secret for secret in secrets)
    assert "b'" not in repr(fingerprints(keyring)), "not even the fingerprint is printed"
