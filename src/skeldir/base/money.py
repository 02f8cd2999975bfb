"""Exact money: decimal amounts become integer minor units by the currency's ISO 4217 exponent.

No float ever touches an amount. A value that cannot be represented exactly, or does not fit
a PostgreSQL bigint, is rejected rather than rounded or truncated.
"""

from __future__ import annotations

import re
from decimal import Decimal

BIGINT_MIN = -(2**63)
BIGINT_MAX = 2**63 - 1


class MoneyError(ValueError):
    """An amount or currency code that cannot be turned into exact minor units."""


def _codes(exponent: int, codes: str) -> dict[str, int]:
    return {code: exponent for code in codes.split()}


# ISO 4217 list one (active codes with minor units). Funds codes such as XAU or XDR have no
# minor unit and are not money we book. Recently withdrawn codes stay because older orders
# still carry them.
MINOR_UNIT_EXPONENTS: dict[str, int] = {
    **_codes(
        2,
        """
        AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN
        BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN
        ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IRR JMD
        KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR
        MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB
        SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY
        TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG ZWL
        """,
    ),
    **_codes(0, "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"),
    **_codes(3, "BHD IQD JOD KWD LYD OMR TND"),
    **_codes(4, "CLF UYW"),
}

_DECIMAL_TEXT = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")
# Longer text cannot hold a bigint of minor units unless padded with zeros nobody sends.
_MAX_TEXT_LENGTH = 64


def exponent(currency: str) -> int:
    """The number of minor-unit digits of an upper-case ISO 4217 code (JPY 0, USD 2, KWD 3)."""
    if not isinstance(currency, str):
        raise MoneyError("currency code must be a string")
    try:
        return MINOR_UNIT_EXPONENTS[currency]
    except KeyError:
        raise MoneyError("unknown currency code") from None


def to_minor(amount: str | int | Decimal, currency: str) -> int:
    """Exact minor units of `amount` ("10.50" USD -> 1050); MoneyError unless exact and in range.

    Strings must be plain decimals ("-3.20", "10", "10.500"); digits beyond the currency's
    exponent are allowed only when they are zeros.
    """
    places = exponent(currency)
    if isinstance(amount, bool):
        raise MoneyError("amount must be a decimal string, an int or a Decimal")
    if isinstance(amount, int):
        return _in_bigint_range(amount * 10**places)
    if isinstance(amount, Decimal):
        if not amount.is_finite():
            raise MoneyError("amount must be finite")
        sign, digit_tuple, decimal_exponent = amount.as_tuple()
        digits = "".join(map(str, digit_tuple))
        return _scaled(sign == 1, digits, int(decimal_exponent), places)
    if isinstance(amount, str):
        if len(amount) > _MAX_TEXT_LENGTH:
            raise MoneyError("amount text is too long")
        match = _DECIMAL_TEXT.fullmatch(amount)
        if match is None:
            raise MoneyError("amount is not a plain decimal number")
        minus, whole, fraction = match.groups()
        fraction = fraction or ""
        return _scaled(minus == "-", whole + fraction, -len(fraction), places)
    raise MoneyError("amount must be a decimal string, an int or a Decimal")


def _scaled(negative: bool, digits: str, decimal_exponent: int, places: int) -> int:
    """int(digits) * 10**(decimal_exponent + places), exactly, or MoneyError."""
    significant = digits.lstrip("0")
    if not significant:
        return 0
    shift = decimal_exponent + places
    if shift >= 0:
        # Checked before multiplying so that "1E+999999999" costs nothing.
        if len(significant) + shift > len(str(BIGINT_MAX)):
            raise MoneyError("amount does not fit in a bigint of minor units")
        magnitude = int(significant) * 10**shift
    else:
        dropped = -shift
        if dropped >= len(significant) or significant[-dropped:].strip("0"):
            raise MoneyError("amount has more fractional digits than the currency allows")
        if len(significant) - dropped > len(str(BIGINT_MAX)):
            raise MoneyError("amount does not fit in a bigint of minor units")
        magnitude = int(significant[:-dropped])
    return _in_bigint_range(-magnitude if negative else magnitude)


def _in_bigint_range(minor: int) -> int:
    if not BIGINT_MIN <= minor <= BIGINT_MAX:
        raise MoneyError("amount does not fit in a bigint of minor units")
    return minor


def format_minor(minor: int, currency: str) -> str:
    """The plain decimal text of `minor` units (1050 USD -> "10.50", 1050 JPY -> "1050")."""
    places = exponent(currency)
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise MoneyError("minor units must be an int")
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), 10**places)
    if places == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:0{places}d}"
