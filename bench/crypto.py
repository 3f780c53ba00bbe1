"""Crypto overhead: our field encryption and pseudonyms beside raw primitive calls, in one run.

Targets (docs/DESIGN "Performance"): field encryption within 1.5x of raw AES-GCM calls with a
cached object; at least 200,000 identifier pseudonyms per second per core.

    python bench/crypto.py [--ops 200000] [--chunk 10000]

Every row runs ``--ops`` operations on one core, in rounds of ``--chunk``; the rounds of a
figure and of its baseline alternate, and each row reports its fastest round. Short
alternating rounds keep a shared machine's background load from landing on one side only.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import platform
import time
from collections.abc import Callable, Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC

from privacy.field_crypto import SubjectCipher, decrypt_many, encrypt_many, new_data_key
from privacy.identifiers import IdentifierKind, NormalizedIdentifier
from privacy.keyring import KeyPurpose, generate_keyring
from privacy.partner_pseudonyms import PartnerPseudonymCodec
from privacy.pseudonyms import Pseudonymizer

FIELD_NAMES = ("email", "phone", "name")
Row = tuple[str, float, float | None]


def fastest_rates(chunk: int, rounds: int, runs: Sequence[Callable[[], object]]) -> list[float]:
    """Operations per second of each run's fastest round, the runs alternating round by round."""
    best = [float("inf")] * len(runs)
    for _ in range(rounds):
        for index, run in enumerate(runs):
            started = time.perf_counter()
            run()
            best[index] = min(best[index], time.perf_counter() - started)
    return [chunk / seconds for seconds in best]


def field_rows(chunk: int, rounds: int) -> list[Row]:
    """(a) encrypt + decrypt of one PII field, then a bulk import with a DEK per subject."""
    emails = [f"user{i}@example.org" for i in range(chunk)]
    encoded = [email.encode() for email in emails]
    subject_id, dek = 123_456_789, new_data_key()
    raw_aes = AESGCM(dek)
    raw_aad = b"audience.field\x01" + subject_id.to_bytes(8, "big") + b"email"
    cipher = SubjectCipher(subject_id, dek)

    def raw_fields() -> None:
        encrypt, decrypt, urandom = raw_aes.encrypt, raw_aes.decrypt, os.urandom
        for plaintext in encoded:
            nonce = urandom(12)
            decrypt(nonce, encrypt(nonce, plaintext, raw_aad), raw_aad)

    def our_fields() -> None:
        encrypt, decrypt = cipher.encrypt, cipher.decrypt
        for email in emails:
            decrypt("email", encrypt("email", email))

    # Bulk: three fields per subject, grouped by subject; encryption (ingestion) and decryption
    # (a later read) are separate passes, so each side sets up every subject's key twice.
    deks = {s: new_data_key() for s in range(1, chunk // len(FIELD_NAMES) + 1)}
    items = [(s, name, f"{name}-{s}@example.org") for s in deks for name in FIELD_NAMES]
    sealed = [(s, f, b) for (s, f, _), b in zip(items, encrypt_many(items, deks), strict=True)]
    raw_groups = [
        (
            deks[s],
            b"audience.field\x01" + s.to_bytes(8, "big"),
            [(n.encode(), f"{n}-{s}@example.org") for n in FIELD_NAMES],
        )
        for s in deks
    ]

    def raw_bulk() -> None:
        urandom = os.urandom
        stored = []
        for key, prefix, values in raw_groups:
            aes = AESGCM(key)
            sealed_values = []
            for name, value in values:
                nonce, aad = urandom(12), prefix + name
                sealed_values.append((aad, nonce, aes.encrypt(nonce, value.encode(), aad)))
            stored.append((key, sealed_values))
        for key, sealed_values in stored:
            aes = AESGCM(key)
            for aad, nonce, blob in sealed_values:
                aes.decrypt(nonce, blob, aad).decode()

    def our_bulk() -> None:
        encrypt_many(items, deks)
        decrypt_many(sealed, deks)

    raw_field, our_field = fastest_rates(chunk, rounds, [raw_fields, our_fields])
    raw_many, our_many = fastest_rates(len(items), rounds, [raw_bulk, our_bulk])
    return [
        ("field enc+dec: raw AESGCM, cached object", raw_field, None),
        ("field enc+dec: SubjectCipher", our_field, raw_field),
        ("bulk 3 fields/subject: raw AESGCM per subject", raw_many, None),
        ("bulk 3 fields/subject: encrypt_many+decrypt_many", our_many, raw_many),
    ]


def pseudonym_rows(chunk: int, rounds: int) -> list[Row]:
    """(b) identifier pseudonyms, then partner pseudonyms for scale."""
    keyring = generate_keyring()
    emails = [f"user{i}@example.org" for i in range(chunk)]
    identifiers = [NormalizedIdentifier(IdentifierKind.EMAIL, email) for email in emails]
    tagged = [identifier.domain_tagged() for identifier in identifiers]
    hmac_key = keyring.current_key(KeyPurpose.IDENTIFIER_HMAC).secret
    raw_keyed = HMAC(hmac_key, hashes.SHA256())
    stdlib_keyed = hmac.new(hmac_key, digestmod=hashlib.sha256)
    pseudonymizer = Pseudonymizer(keyring)
    codec = PartnerPseudonymCodec(keyring)
    subject_ids = list(range(1, chunk + 1))
    partner_texts = codec.encode_many(7, subject_ids)

    def raw_hmac() -> None:
        copy = raw_keyed.copy
        for message in tagged:
            mac = copy()
            mac.update(message)
            mac.finalize()

    def stdlib_hmac() -> None:
        copy = stdlib_keyed.copy
        for message in tagged:
            mac = copy()
            mac.update(message)
            mac.digest()

    def our_pseudonyms() -> None:
        pseudonym = pseudonymizer.pseudonym
        for identifier in identifiers:
            pseudonym(identifier)

    def our_digests() -> None:
        pseudonymizer.digest_many(IdentifierKind.EMAIL, emails)

    def partner_encode() -> None:
        codec.encode_many(7, subject_ids)

    def partner_decode() -> None:
        decode = codec.decode
        for text in partner_texts:
            decode(7, text)

    raw_mac, stdlib_mac, our_mac, our_bulk = fastest_rates(
        chunk, rounds, [raw_hmac, stdlib_hmac, our_pseudonyms, our_digests]
    )
    encode_rate, decode_rate = fastest_rates(chunk, rounds, [partner_encode, partner_decode])
    return [
        ("pseudonym: raw HMAC .copy() (cryptography)", raw_mac, None),
        ("pseudonym: raw hmac .copy() (stdlib)", stdlib_mac, raw_mac),
        ("pseudonym: Pseudonymizer.pseudonym", our_mac, raw_mac),
        ("pseudonym: Pseudonymizer.digest_many", our_bulk, raw_mac),
        ("partner pseudonym: encode_many (AES-SIV)", encode_rate, None),
        ("partner pseudonym: decode", decode_rate, None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=200_000)
    parser.add_argument("--chunk", type=int, default=10_000)
    arguments = parser.parse_args()
    chunk = arguments.chunk
    rounds = max(1, arguments.ops // chunk)

    fields = field_rows(chunk, rounds)
    pseudonyms = pseudonym_rows(chunk, rounds)

    print(f"crypto bench: {rounds * chunk:,} ops per row in rounds of {chunk:,}, fastest round, one core, "
          f"Python {platform.python_version()}")  # fmt: skip
    print(f"{'what':<52} {'ops/s':>12} {'ours vs raw':>12}")
    for name, rate, baseline in [*fields, *pseudonyms]:
        ratio = f"{baseline / rate:.2f}x slower" if baseline is not None else ""
        print(f"{name:<52} {rate:>12,.0f} {ratio:>12}")
    field_ratio = fields[0][1] / fields[1][1]
    pseudonym_rate = pseudonyms[2][1]
    print()
    print(f"field encryption overhead: {field_ratio:.2f}x raw (target <= 1.5x): "
          f"{'OK' if field_ratio <= 1.5 else 'MISSED'}")  # fmt: skip
    print(f"pseudonyms per second per core: {pseudonym_rate:,.0f} (target >= 200,000): "
          f"{'OK' if pseudonym_rate >= 200_000 else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
