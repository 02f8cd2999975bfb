"""Stripe's integer amounts in ISO 4217 minor units: Stripe's decimals per currency differ
from ISO's for some currencies."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from skeldir.base import money
from skeldir.domains.ingestion.provider import UnprocessableEvent
from skeldir.domains.providers.payload import required_minor_amount

# Stripe's minor units are not always ISO 4217's (docs.stripe.com/currencies): amounts are
# two-decimal unless the currency is on Stripe's zero- or three-decimal list. ISK and UGX are
# zero-decimal in ISO but two-decimal at Stripe for backwards compatibility ("to charge 5 ISK,
# provide an amount value of 500"); UGX is also printed on the zero-decimal list, but the
# special-cases row is what the API enforces. MGA is zero-decimal at Stripe and two-decimal in
# ISO. HUF and TWD are zero-decimal at Stripe for payouts only; their charges are two-decimal.
STRIPE_ZERO_DECIMAL = frozenset(
    {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    }
)
STRIPE_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def stripe_amount(obj: Mapping[str, Any], key: str, currency: str, where: str) -> int:
    """The integer amount at `key`, in Stripe's minor units, in ISO 4217 minor units."""
    return to_iso_minor(required_minor_amount(obj, key, where), currency, f"{where}.{key}")


def to_iso_minor(amount: int, currency: str, field: str) -> int:
    try:
        return iso_minor_units(amount, currency)
    except money.MoneyError:
        raise UnprocessableEvent(f"{field} is not an exact amount in range") from None


def stripe_exponent(currency: str) -> int:
    """How many decimals Stripe's integer amounts carry for an upper-case currency code."""
    if currency in STRIPE_ZERO_DECIMAL:
        return 0
    return 3 if currency in STRIPE_THREE_DECIMAL else 2


def iso_minor_units(amount: int, currency: str) -> int:
    """A Stripe amount in ISO 4217 minor units (ISK 500 -> 5, MGA 5 -> 500); MoneyError when
    it cannot be expressed exactly (fractional ISK from before Stripe disallowed it)."""
    return money.to_minor(Decimal(f"{amount}E-{stripe_exponent(currency)}"), currency)
