"""Region codes: the one vocabulary for an event's ``region`` and a person's declared region.

A region is a coarse quasi-identifier and the only place-name a sender writes, so it is kept only
as a code: an ISO 3166-1 country (or NUTS's ``EL`` and ``UK``) and, optionally, a subdivision of
at most three letters or digits — ISO 3166-2 (``FR-IDF``, ``DE-BE``) or NUTS 1 to 3 (``FR1``,
``FRL``, ``FR101``). Three characters hold no email, phone number or name, so nothing a sender
hides in a region reaches the disk; a value of any other shape is dropped or refused.
"""

from __future__ import annotations

from typing import Final

import polars as pl

_COUNTRIES: Final = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
    BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE
    EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
    HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC
    LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
    NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
    SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
    TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW EL UK
"""
COUNTRY_CODES: Final = frozenset(_COUNTRIES.split())
"""ISO 3166-1 alpha-2, with ``XK`` (Kosovo, in common use) and NUTS's ``EL`` (Greece) and ``UK``."""
REGION_SHAPE: Final = r"^[A-Z]{2}(?:-?[A-Z0-9]{1,3})?$"


def region_code(region: pl.Expr) -> pl.Expr:
    """``region`` where it is a region code, else null."""
    known_country = region.str.slice(0, 2).is_in(sorted(COUNTRY_CODES))
    return pl.when(region.str.contains(REGION_SHAPE) & known_country).then(region)
