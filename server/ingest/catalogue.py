"""The attribute catalogue: what each declared attribute is, and therefore how it is kept.

PII is encrypted under the subject's data key. A quasi-identifier is kept only as a coarse
band (a birth year becomes an age band), because exact values combine into re-identification.
Behavioural attributes are kept as coarse categories. Anything not in the catalogue is dropped.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

import polars as pl


class AttributeClass(enum.StrEnum):
    PII = "pii"
    QUASI_IDENTIFIER = "quasi_identifier"
    BEHAVIOURAL = "behavioural"


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    name: str
    kind: AttributeClass
    stored_as: str
    max_length: int = 200


CATALOGUE: Final[dict[str, AttributeSpec]] = {
    spec.name: spec
    for spec in (
        AttributeSpec("email", AttributeClass.PII, "encrypted field 'email' (normalized)", 254),
        AttributeSpec("phone", AttributeClass.PII, "encrypted field 'phone' (E.164)", 32),
        AttributeSpec("first_name", AttributeClass.PII, "encrypted field 'first_name'", 100),
        AttributeSpec("last_name", AttributeClass.PII, "encrypted field 'last_name'", 100),
        AttributeSpec("birth_date", AttributeClass.PII, "encrypted field 'birth_date'", 10),
        AttributeSpec("street_address", AttributeClass.PII, "encrypted field 'street_address'", 200),
        AttributeSpec("birth_year", AttributeClass.QUASI_IDENTIFIER, "age band only (e.g. 25-34)"),
        AttributeSpec("region", AttributeClass.QUASI_IDENTIFIER, "region code only (e.g. FR-IDF), 2-16 chars"),
        AttributeSpec("gender", AttributeClass.BEHAVIOURAL, "one of female, male, other, undisclosed"),
    )
}
PII_FIELDS: Final = tuple(name for name, spec in CATALOGUE.items() if spec.kind is AttributeClass.PII)
GENDERS: Final = ("female", "male", "other", "undisclosed")
# What sources send for the same four categories (e.g. the German civil-status "divers").
GENDER_SYNONYMS: Final = {
    "f": "female",
    "woman": "female",
    "m": "male",
    "man": "male",
    "diverse": "other",
    "divers": "other",
    "non-binary": "other",
    "nonbinary": "other",
    "x": "other",
    "unknown": "undisclosed",
    "prefer not to say": "undisclosed",
}


def gender_category(gender: pl.Expr) -> pl.Expr:
    """One of ``GENDERS`` (synonyms mapped), or null when the value is none of them."""
    lowered = gender.str.strip_chars().str.to_lowercase()
    mapped = lowered.replace(GENDER_SYNONYMS)
    return pl.when(mapped.is_in(list(GENDERS))).then(mapped)


def age_band(birth_year: pl.Expr, *, current_year: int) -> pl.Expr:
    """Coarse bands; minors are one band, because their data deserves the least detail."""
    age = pl.lit(current_year) - birth_year
    return (
        pl.when(age < 18)
        .then(pl.lit("<18"))
        .when(age < 25)
        .then(pl.lit("18-24"))
        .when(age < 35)
        .then(pl.lit("25-34"))
        .when(age < 45)
        .then(pl.lit("35-44"))
        .when(age < 55)
        .then(pl.lit("45-54"))
        .when(age < 65)
        .then(pl.lit("55-64"))
        .otherwise(pl.lit("65+"))
    )
