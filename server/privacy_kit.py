"""The privacy primitives a process needs, built once from the keyring and reused.

Building them per call would redo key schedules and HMAC precomputation on every request.
"""

from __future__ import annotations

from dataclasses import dataclass

from privacy.field_crypto import KeyWrapper
from privacy.identifiers import NormalizationRules, PlusTagRule
from privacy.keyring import Keyring
from privacy.labels import LabelKeeper
from privacy.message_keys import MessageKeys
from privacy.noise import NoiseSource
from privacy.partner_pseudonyms import PartnerPseudonymCodec
from privacy.pseudonyms import Pseudonymizer
from privacy.sealed_tokens import TokenSealer
from server.settings import Settings


@dataclass(frozen=True, slots=True)
class PrivacyKit:
    keyring: Keyring
    rules: NormalizationRules
    pseudonymizer: Pseudonymizer
    key_wrapper: KeyWrapper
    partner_pseudonyms: PartnerPseudonymCodec
    token_sealer: TokenSealer
    message_keys: MessageKeys
    labels: LabelKeeper
    noise: NoiseSource


BUILT_IN_LABELS = frozenset({"api", "import"})
"""The default sources of a GraphQL batch and of a file import: our words, not a sender's."""


def build_kit(keyring: Keyring, settings: Settings) -> PrivacyKit:
    rules = NormalizationRules(
        plus_tag=PlusTagRule(settings.email_plus_tags), default_phone_region=settings.phone_default_region
    )
    return PrivacyKit(
        keyring=keyring,
        rules=rules,
        pseudonymizer=Pseudonymizer(keyring),
        key_wrapper=KeyWrapper(keyring),
        partner_pseudonyms=PartnerPseudonymCodec(keyring),
        token_sealer=TokenSealer(keyring),
        message_keys=MessageKeys(keyring),
        labels=LabelKeeper(keyring, BUILT_IN_LABELS | settings.declared_labels),
        noise=NoiseSource(keyring),
    )
