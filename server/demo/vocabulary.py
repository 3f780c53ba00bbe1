"""The demo's fixed vocabulary: frame schemas, channels, event types, and the made-up people's parts.

Everything here is either a documented output shape or a fiction: reserved email domains,
telephone ranges reserved for fiction, and a short list of common first and last names.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import polars as pl

from privacy.purposes import Purpose
from server.ingest.records import EVENT_SCHEMA
from server.ingest.vocabulary import CHANNEL_ORDER, EVENT_TYPE_ORDER

UTC_MICROS = pl.Datetime("us", "UTC")
CHANNELS: Final = CHANNEL_ORDER
EVENT_TYPES: Final = EVENT_TYPE_ORDER
PARTNERS: Final = ("partner-alpha", "partner-beta")
RESERVED_EMAIL_DOMAINS: Final = ("example.org", "example.com", "example.net")
PURPOSES: Final = tuple(purpose.value for purpose in Purpose)

EVENTS_SCHEMA: Final = EVENT_SCHEMA
ATTRIBUTES_SCHEMA: Final = pl.Schema(
    {
        "user_id": pl.String(),
        "email": pl.String(),
        "phone": pl.String(),
        "first_name": pl.String(),
        "last_name": pl.String(),
        "birth_year": pl.Int32(),
        "gender": pl.String(),
        "region": pl.String(),
    }
)
CONSENT_CHANGES_SCHEMA: Final = pl.Schema(
    {
        "user_id": pl.String(),
        "anonymous_id": pl.String(),
        "purpose": pl.String(),
        "granted": pl.Boolean(),
        "timestamp": UTC_MICROS,
        "source": pl.String(),
    }
)
DEFECTS_SCHEMA: Final = pl.Schema({"message_id": pl.String(), "defect": pl.String()})

# Per-channel event-type mix: which events each channel can carry, and how often.
TYPE_MIX: Final[dict[str, dict[str, float]]] = {
    "web": {"page_view": 0.60, "click": 0.16, "search": 0.10, "add_to_cart": 0.09, "purchase": 0.05},
    "app": {"app_open": 0.28, "page_view": 0.30, "click": 0.15, "search": 0.10, "add_to_cart": 0.11, "purchase": 0.06},
    "email": {"email_open": 0.78, "email_click": 0.22},
    "ads": {"ad_impression": 0.92, "ad_click": 0.08},
    "offline": {"store_visit": 0.62, "purchase": 0.38},
    "partner": {"page_view": 0.55, "click": 0.20, "search": 0.12, "add_to_cart": 0.08, "purchase": 0.05},
}
CHANNEL_SHARE: Final = np.array([0.40, 0.20, 0.13, 0.15, 0.05, 0.07])
TOPICLESS_TYPES: Final = ("app_open", "signup", "store_visit")
CATEGORY_TYPES: Final = ("page_view", "click", "search")
CAMPAIGNS: Final[dict[str, tuple[str, ...]]] = {
    "email": ("weekly-newsletter", "welcome-series", "abandoned-cart", "summer-sale", "loyalty-rewards", "win-back"),
    "ads": ("brand-awareness", "retargeting", "new-collection", "black-friday-teaser", "app-install", "store-promo"),
}
# Monday first; weekends are busier, nights are quiet (hours in UTC).
WEEKDAY_WEIGHT: Final = np.array([1.00, 0.95, 1.00, 1.05, 1.10, 1.30, 1.25])
HOUR_WEIGHT: Final = np.array(
    [
        0.2,
        0.1,
        0.1,
        0.1,
        0.1,
        0.2,
        0.5,
        0.9,
        1.1,
        1.0,
        1.0,
        1.2,
        1.5,
        1.4,
        1.1,
        1.0,
        1.0,
        1.2,
        1.5,
        1.9,
        2.1,
        2.0,
        1.4,
        0.7,
    ]
)
# NUTS-1 regions of France with a rough population share, to match the French fiction phone ranges.
REGIONS: Final = ("FR1", "FRB", "FRC", "FRD", "FRE", "FRF", "FRG", "FRH", "FRI", "FRJ", "FRK", "FRL", "FRM", "FRY")
REGION_SHARE: Final = np.array([18, 4, 4, 5, 9, 8, 6, 5, 9, 9, 12, 7.5, 0.5, 3])
FICTION_PHONE_PREFIXES: Final = ("+3319900", "+3326191", "+3335301", "+3346571", "+3353649")
FIRST_NAMES: Final = (
    "camille", "lea", "manon", "chloe", "ines", "sarah", "jade", "louise", "emma", "alice", "julie", "nora",
    "lucas", "hugo", "louis", "nathan", "gabriel", "arthur", "jules", "adam", "paul", "leo", "noah", "yanis",
    "sofia", "maria", "anna", "mehdi", "karim", "amina", "omar", "lina", "eva", "tom", "theo", "zoe",
)  # fmt: skip
LAST_NAMES: Final = (
    "martin", "bernard", "dubois", "thomas", "robert", "richard", "petit", "durand", "leroy", "moreau",
    "simon", "laurent", "lefebvre", "michel", "garcia", "david", "bertrand", "roux", "vincent", "fournier",
    "morel", "girard", "andre", "mercier", "dupont", "lambert", "bonnet", "francois", "martinez", "nguyen",
)  # fmt: skip
GENDERS: Final = ("female", "male", "diverse")
UNKNOWN_EVENT_TYPES: Final = ("page_veiw", "purchased", "checkout_started", "PAGEVIEW")
UNKNOWN_TOPICS: Final = ("sports/underwater-hockey", "gadgets", "entertainment/k-drama", "misc")
DEFECT_KINDS: Final = ("future_timestamp", "malformed_email", "unknown_event_type", "unknown_topic")
