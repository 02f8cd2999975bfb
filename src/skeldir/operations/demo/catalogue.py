"""What the demo shop sells: a price list per currency (shops price each market on its own, so
prices are not exchange-rate conversions) and baskets drawn from it."""

from __future__ import annotations

import random
from dataclasses import dataclass

CURRENCIES = ("USD", "EUR", "GBP", "JPY")
# name -> unit price in minor units of each of CURRENCIES
PRICES: dict[str, tuple[int, int, int, int]] = {
    "Fountain pen, matte black": (7500, 6900, 5900, 11000),
    "Fountain pen, demonstrator": (4200, 3900, 3300, 6200),
    "Bottled ink, blue-black 50 ml": (1800, 1650, 1400, 2600),
    "Ink cartridges, pack of 12": (900, 850, 700, 1300),
    "Dot-grid notebook A5": (2400, 2200, 1900, 3500),
    "Leather pen case": (3800, 3500, 2900, 5500),
    "Piston converter": (650, 600, 500, 950),
}
# (flat shipping, free from this subtotal), in minor units
SHIPPING = {"USD": (595, 7500), "EUR": (490, 6000), "GBP": (395, 5000), "JPY": (800, 10000)}


@dataclass(frozen=True, slots=True)
class Line:
    product: str
    quantity: int
    unit_minor: int

    @property
    def total_minor(self) -> int:
        return self.quantity * self.unit_minor


def unit_price(product: str, currency: str) -> int:
    return PRICES[product][CURRENCIES.index(currency)]


def basket(rng: random.Random, currency: str) -> tuple[Line, ...]:
    products = rng.sample(sorted(PRICES), rng.choices((1, 2, 3), (55, 32, 13))[0])
    return tuple(
        Line(product, rng.choices((1, 2, 3), (75, 20, 5))[0], unit_price(product, currency))
        for product in products
    )


def shipping(lines: tuple[Line, ...], currency: str) -> int:
    flat, free_from = SHIPPING[currency]
    return 0 if sum(line.total_minor for line in lines) >= free_from else flat
