"""What an event may be: its types and channels, shared by ingestion, profiles and the demo.

Ingestion validates against these; profiles read their channel mix by them. They live below
both so that profiles need not import ingestion (``server.ingest.vocabulary`` re-exports them).
"""

from __future__ import annotations

from typing import Final

__all__ = ["ADVERTISING_EVENT_TYPES", "CHANNELS", "CHANNEL_ORDER", "EVENT_TYPES", "EVENT_TYPE_ORDER"]

# Ordered, because the demo generator indexes into them and must stay deterministic, and a
# profile's channel mix is listed in this order.
CHANNEL_ORDER: Final = ("web", "app", "email", "ads", "offline", "partner")
EVENT_TYPE_ORDER: Final = (
    "page_view",
    "click",
    "search",
    "purchase",
    "add_to_cart",
    "email_open",
    "email_click",
    "ad_impression",
    "ad_click",
    "signup",
    "app_open",
    "store_visit",
)
CHANNELS: Final = frozenset(CHANNEL_ORDER)
EVENT_TYPES: Final = frozenset(EVENT_TYPE_ORDER)
ADVERTISING_EVENT_TYPES: Final = frozenset({"ad_impression", "ad_click"})
