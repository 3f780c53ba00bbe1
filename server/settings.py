"""Configuration from ``AUDIENCE_*`` environment variables and an optional TOML file.

Environment variables win over the file, so a container can override one value without
rewriting the file. A wrong value stops start-up with one line naming the setting. Every number
has a floor and a ceiling (docs/configuration.md, "Ranges"): a value past them would only fail
later, inside every request or import (a retention of a million days reaches before year 1).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "AUDIENCE_"
CONFIG_FILE_VARIABLE = "AUDIENCE_CONFIG"
MIN_ANONYMITY_THRESHOLD = 10
DECLARED_LABEL = r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,31}"  # fits the narrowest label column (policy_version)

LogLevel = Literal["debug", "info", "warning", "error"]


class SettingsError(Exception):
    """A setting is missing or wrong; the message names it and never echoes a secret."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    data_dir: Path = Field(default=Path(".audience"), description="Where the SQLite file and keyring live.")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty means a SQLite file in data_dir.")
    keyring_path: Path | None = Field(default=None, description="Keyring file; default data_dir/keyring.json.")
    keyring: SecretStr | None = Field(default=None, description="Keyring JSON itself, for containers.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    anonymity_threshold: int = Field(default=50, ge=MIN_ANONYMITY_THRESHOLD, le=1_000_000)
    log_level: LogLevel = "info"
    demo: bool = Field(default=False, description="Demo mode: GraphiQL and introspection for everyone.")
    graphiql: bool | None = Field(default=None, description="Serve GraphiQL; defaults to the demo flag.")
    max_query_depth: int = Field(default=10, ge=1, le=50)
    max_aliases: int = Field(default=15, ge=1, le=1000)
    max_tokens: int = Field(default=5000, ge=100, le=1_000_000)
    max_root_fields: int = Field(default=10, ge=1, le=100)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=1 << 30)
    email_plus_tags: Literal["keep", "strip"] = Field(
        default="keep", description="Keep or strip '+tag' in email local parts; changing it changes pseudonyms."
    )
    phone_default_region: str = Field(
        default="DE", pattern=r"^[A-Z]{2}$", description="Region for phone numbers written without +country code."
    )
    ingest_max_batch: int = Field(default=10_000, ge=1, le=1_000_000, description="Events per GraphQL batch.")
    ingest_future_skew_seconds: int = Field(
        default=300, ge=0, le=86_400, description="Clock skew tolerated for timestamps."
    )
    retention_days: int = Field(
        default=400, ge=1, le=36_500, description="Events older than this are refused (TOO_OLD)."
    )
    taxonomy_extra: Path | None = Field(default=None, description="CSV of extra topics extending the taxonomy.")
    extra_event_types: str = Field(default="", description="Comma-separated event types beyond the built-in ones.")
    max_emails_per_subject: int = Field(default=5, ge=1, le=1_000)
    max_phones_per_subject: int = Field(default=5, ge=1, le=1_000)
    max_device_ids_per_subject: int = Field(default=50, ge=1, le=10_000)
    max_customer_ids_per_subject: int = Field(default=3, ge=1, le=1_000)
    max_partner_user_ids_per_subject: int = Field(default=20, ge=1, le=10_000)
    max_subjects_per_merge: int = Field(
        default=3, ge=2, le=1_000, description="Merge-storm breaker: subjects joined at once."
    )
    max_identities_after_merge: int = Field(
        default=100, ge=2, le=100_000, description="Merge-storm breaker: identities after."
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="When set, /metrics requires 'Authorization: Bearer <token>'."
    )
    parser_cache_size: int = Field(default=1024, ge=16, le=1_000_000)
    validation_cache_size: int = Field(default=1024, ge=16, le=1_000_000)
    trusted_document_cache_size: int = Field(default=1024, ge=16, le=1_000_000)
    api_key_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="How long a worker trusts a key it verified before reading it again: a key revoked elsewhere "
        "(the CLI, another worker) keeps working there at most this long; 0 reads the key on every request.",
    )
    trusted_documents_only: bool = Field(
        default=False, description="Partner keys may run registered documents only (docs/trusted-documents.md)."
    )
    # Bounded waits on the database (server/storage/bounded_waits.py): a partition or a full disk
    # is answered with a 503, never held.
    database_connect_timeout_seconds: float = Field(
        default=5, gt=0, le=300, description="PostgreSQL: give up connecting after this long."
    )
    database_statement_timeout_seconds: float = Field(
        default=30,
        gt=0,
        le=86_400,
        description="PostgreSQL: the server cancels a statement after this long; the client waits 2 s more.",
    )
    database_pool_timeout_seconds: float = Field(
        default=5, gt=0, le=300, description="Wait for a pooled connection (PostgreSQL), a write turn (SQLite)."
    )
    sqlite_busy_timeout_seconds: float = Field(
        default=10, gt=0, le=300, description="SQLite: wait this long for another process's write lock."
    )
    readiness_timeout_seconds: float = Field(
        default=2, gt=0, le=60, description="/readyz says not ready when its database check takes longer."
    )

    # What a sender writes is kept in clear only from a declared vocabulary (docs/ingestion.md).
    label_vocabulary: str = Field(
        default="",
        description="Comma-separated labels (batch and consent sources, policy versions, campaigns) kept in clear; "
        "any other label a sender writes is stored as a keyed hash.",
    )

    # Profiles (docs/profiles.md): changing a weight or a half-life takes effect at the next build.
    interest_weights: str = Field(
        default="",
        description="Comma-separated type=weight pairs overriding the interest weight of event types.",
    )
    interest_half_lives: str = Field(
        default="",
        description="Comma-separated topic=days pairs overriding a topic's interest half-life (children inherit).",
    )
    interest_saturation: float = Field(
        default=5.0, gt=0, le=1_000_000, description="The raw interest that scores 0.5 (one purchase by default)."
    )
    interest_top_k: int = Field(default=5, ge=1, le=100, description="Interests shown per profile.")
    lifecycle_new_days: int = Field(default=14, ge=1, le=3650, description="A subject first seen this recently is new.")
    lifecycle_active_days: int = Field(
        default=30, ge=1, le=3650, description="A subject with an event this recently is active."
    )
    lifecycle_churn_days: int = Field(
        default=90, ge=1, le=3650, description="A subject with no event for this long has churned."
    )
    value_tier_high_quantile: float = Field(default=0.8, gt=0, lt=1, description="Buyers at or above it are high.")
    value_tier_low_quantile: float = Field(default=0.4, gt=0, lt=1, description="Buyers below it are low.")
    bot_events_per_day: int = Field(
        default=2_000, ge=10, le=10_000_000, description="More events than this in a day flags a subject as bot-like."
    )
    build_events_per_partition: int = Field(
        default=100_000,
        ge=1_000,
        le=100_000_000,
        description="Stored events per build partition when --partitions is not given: larger builds faster "
        "and holds ingestion back longer per partition.",
    )

    # Retention (docs/retention.md): what `audience purge` and the server's scheduled run delete.
    retention_events_days: int = Field(
        default=396, ge=1, le=36_500, description="Events older than this many whole UTC days are deleted."
    )
    retention_anonymous_subject_days: int = Field(
        default=90,
        ge=1,
        le=36_500,
        description="Subjects without an identifier, created and inactive this long, are erased.",
    )
    retention_receipt_days: int = Field(
        default=1096,
        ge=1,
        le=36_500,
        description="Closed data-subject requests and erasure receipts older than this are deleted.",
    )
    retention_interval_seconds: int = Field(
        default=86_400,
        ge=0,
        le=2_678_400,
        description="How often the server runs the purge; 0 turns the scheduled run off.",
    )

    segment_sweep_seconds: int = Field(
        default=900,
        ge=0,
        le=86_400,
        description="How often the server re-evaluates segments whose rules change with time alone; 0: never.",
    )
    segment_poll_seconds: float = Field(
        default=5.0,
        gt=0,
        le=3_600,
        description="How often the segment worker looks for changes committed by other processes.",
    )

    bi_publish_seconds: int = Field(
        default=300,
        ge=0,
        le=86_400,
        description="How often the segment worker republishes the aggregates BI tools read; 0: only by CLI.",
    )

    analytics_noise_scale: float = Field(
        default=5.0,
        ge=1.0,
        le=1_000.0,
        description="Scale of the sticky noise on counts analysts and marketers see (differential privacy off).",
    )
    analytics_threshold_margin: float = Field(
        default=3.0,
        ge=0.0,
        le=20.0,
        description="A noisy count is shown only at k plus this many noise scales or more (the noisy threshold).",
    )
    analytics_releases_per_period: int = Field(
        default=1_000,
        ge=1,
        le=10_000_000,
        description="New answers (a question over data as it stood) one key may be given per period; repeats are free.",
    )
    analytics_period_days: int = Field(
        default=1, ge=1, le=366, description="Length of the budget period, in UTC days from 1970-01-01."
    )
    dp_epsilon_per_period: float = Field(
        default=0.0,
        ge=0.0,
        le=1_000.0,
        description="Differential-privacy budget of each key per period; 0 turns differential privacy off.",
    )
    dp_epsilon_per_answer: float = Field(
        default=0.1,
        gt=0.0,
        le=100.0,
        description="What each new noisy answer costs with differential privacy on; it sets the noise scale.",
    )

    @field_validator("interest_weights", "interest_half_lives")
    @classmethod
    def _check_pairs(cls, text: str) -> str:
        named_numbers(text)
        return text

    @model_validator(mode="after")
    def _check_profile_rules(self) -> Settings:
        if self.lifecycle_active_days >= self.lifecycle_churn_days:
            raise ValueError("lifecycle_active_days must be below lifecycle_churn_days")
        if self.value_tier_low_quantile >= self.value_tier_high_quantile:
            raise ValueError("value_tier_low_quantile must be below value_tier_high_quantile")
        return self

    @field_validator("label_vocabulary")
    @classmethod
    def _check_label_vocabulary(cls, text: str) -> str:
        if not all(re.fullmatch(DECLARED_LABEL, label.strip()) for label in text.split(",") if label.strip()):
            raise ValueError("each label must be 1-32 characters of letters, digits, ._:/-, starting alphanumeric")
        return text

    @property
    def declared_labels(self) -> frozenset[str]:
        return frozenset(label.strip() for label in self.label_vocabulary.split(",") if label.strip())

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, url: str) -> str:
        if url and not url.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        return url

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'audience.db').as_posix()}"

    @property
    def effective_keyring_path(self) -> Path:
        return self.keyring_path or self.data_dir / "keyring.json"

    @property
    def graphiql_enabled(self) -> bool:
        return self.demo if self.graphiql is None else self.graphiql

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = os.environ.get(CONFIG_FILE_VARIABLE)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning any validation failure into one ``SettingsError`` line."""
    config_file = os.environ.get(CONFIG_FILE_VARIABLE)
    if config_file and not Path(config_file).is_file():
        raise SettingsError(f"{CONFIG_FILE_VARIABLE}: config file {config_file} does not exist")
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None
    except ValueError as error:  # a malformed TOML file
        raise SettingsError(f"{CONFIG_FILE_VARIABLE}: config file cannot be parsed ({type(error).__name__})") from None


def _describe(error: ValidationError) -> str:
    first = error.errors(include_input=False, include_url=False)[0]
    location = [str(part) for part in first["loc"]]
    name = f"{ENV_PREFIX}{location[0].upper()}" if location else "settings"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "is not a known setting"
    return f"invalid setting {name}: {message}"


NAMED_NUMBER = re.compile(r"^\s*([a-z0-9_/-]{1,128})\s*=\s*([0-9]+(?:\.[0-9]+)?)\s*$")


def named_numbers(text: str) -> dict[str, float]:
    """``name=number`` pairs separated by commas (interest weights, half-lives); names are not echoed."""
    pairs: dict[str, float] = {}
    for position, item in enumerate((part for part in text.split(",") if part.strip()), start=1):
        match = NAMED_NUMBER.match(item)
        if match is None:
            raise ValueError(f"item {position} is not name=number (a lowercase name, a non-negative number)")
        pairs[match.group(1)] = float(match.group(2))
    return pairs
