"""The consent a touchpoint was collected under, in any of three spellings.

* Google Consent Mode v2: `{"analytics_storage": "granted"|"denied", "ad_storage": ...}`.
* Shopify's Customer Privacy API: `{"analytics": true|false, "marketing": true|false}`
  (`analyticsProcessingAllowed()` and `marketingAllowed()`).
* An explicit `"granted"` or `"denied"` (both purposes alike), or `true`/`false`.

Without analytics consent nothing of the item is kept: no visitor id, no tokens, and no
anonymous count either (see docs/privacy.md). Without ad consent the item is kept without its
ad click ids (gclid, fbclid, ...), which identify an ad click. An item with no consent at all
was collected under the shop's own consent handling and is kept whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ConsentError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Consent:
    analytics: bool
    ads: bool


GRANTED = Consent(analytics=True, ads=True)
_STATES = {"granted": True, "denied": False}


def read_consent(value: Any) -> Consent:
    """The consent `value` states; GRANTED when it is absent (None)."""
    if value is None:
        return GRANTED
    if isinstance(value, bool):
        return Consent(value, value)
    if isinstance(value, str):
        if value not in _STATES:
            raise ConsentError('consent is "granted", "denied" or an object')
        return Consent(_STATES[value], _STATES[value])
    if not isinstance(value, dict):
        raise ConsentError('consent is "granted", "denied" or an object')
    if "analytics_storage" in value or "ad_storage" in value:
        return Consent(
            _google(value, "analytics_storage"), _google(value, "ad_storage")
        )
    if "analytics" in value or "marketing" in value:
        return Consent(_flag(value, "analytics"), _flag(value, "marketing"))
    raise ConsentError(
        "consent names analytics_storage and ad_storage (Google Consent Mode) or analytics and"
        " marketing (Shopify Customer Privacy)"
    )


# A purpose the state leaves out is denied: consent is given, never assumed.
def _google(value: dict, name: str) -> bool:
    state = value.get(name)
    if state is None:
        return False
    if state not in _STATES:
        raise ConsentError(f'consent.{name} is "granted" or "denied"')
    return _STATES[state]


def _flag(value: dict, name: str) -> bool:
    flag = value.get(name, False)
    if not isinstance(flag, bool):
        raise ConsentError(f"consent.{name} is true or false")
    return flag
