"""Platform amounts as ledger amounts: exact, in integers or decimals, never floats.

The ledger refuses an amount finer than its currency's minor unit (a file or an API caller
should say what it means). A platform may report finer amounts (Google accrues cost in micros;
a decimal string may carry more digits than the currency has): a connector rounds them half up
to the minor unit, so a row is off by half a minor unit at most, and says so in its docs.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from skeldir.base.money import MoneyError, exponent
from skeldir.domains.spend.rows import MICROS_EXPONENT


def round_micros(micros: int, currency: str) -> int:
    """`micros` rounded half up to a whole minor unit of `currency`, still in micros."""
    step = 10 ** (MICROS_EXPONENT - exponent(currency))
    return (micros + step // 2) // step * step


def round_decimal(amount: Any, currency: Any) -> Any:
    """A decimal string rounded half up to `currency`'s minor unit, as a decimal string;
    anything else (not a plain decimal, an unknown currency) as given, for the row validation
    to name."""
    if not isinstance(amount, str) or not isinstance(currency, str):
        return amount
    try:
        value = Decimal(amount)
        places = exponent(currency)
    except (InvalidOperation, MoneyError):
        return amount
    if not value.is_finite() or value.as_tuple().exponent >= -places:
        return amount
    return str(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))
