"""The demo shop's days as plain data: visitors and their visits, the orders some of them place
on one of the shop's checkouts, a few refunds, and (over a period) what its ads cost.

Everything comes from one seeded `random.Random`, and the draws never depend on the clock:
the same seed gives the same visitors, orders and amounts whenever it runs; only the times
move with `now`. `demo_day` is the current UTC day, between midnight and `now`; `demo_period`
is that day and the days before it, with returning customers and the ads' daily spend. A
visitor's earlier visits may fall on the days before their order.
"""

from __future__ import annotations

import random
import string
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta, timezone

from skeldir.operations.demo import campaigns, catalogue, traffic
from skeldir.operations.demo.catalogue import Line

# The platforms that take the shop's payments, with their share of orders.
CHECKOUT_SHARES = (
    ("shopify", 30),
    ("stripe", 20),
    ("woocommerce", 20),
    ("paypal", 12),
    ("standard", 18),
)
CHECKOUTS = tuple(name for name, _ in CHECKOUT_SHARES)
# Each platform's store sells in these currencies (with these shares).
CHECKOUT_CURRENCIES = {
    "shopify": (("USD", 1),),
    "stripe": (("EUR", 5), ("GBP", 3), ("USD", 2)),
    "woocommerce": (("EUR", 1),),
    "paypal": (("USD", 3), ("GBP", 2)),
    "standard": (("JPY", 2), ("USD", 1)),
}
# The token a platform's checkout page can hand to the collector (collect.js `link`).
CHECKOUT_TOKEN_KIND = {"woocommerce": "cart_token"}
MIN_VISITORS = 20
BUYER_SHARE = 0.3
REFUND_SHARE = 0.12
# Of a period's buyers, this share are earlier buyers coming back (with the same email).
RETURNING_SHARE = 0.25
DEFAULT_DAYS = 90
MAX_DAYS = 366
CUSTOMER_DOMAIN = "mail.example"
# How an order names its buyer: the visitor id itself, a checkout token the collector saw,
# or nothing (only the order's own landing page and referrer are left to go by).
LINKS = (("visitor", 70), ("token", 22), ("none", 8))
_KEY_ALPHABET = string.ascii_uppercase + string.digits


@dataclass(frozen=True, slots=True)
class Visit:
    touchpoint_id: str
    visitor_id: str
    occurred_at: datetime
    landing: traffic.Landing


@dataclass(frozen=True, slots=True)
class Identify:
    """The checkout page telling the collector which token belongs to the visitor."""

    touchpoint_id: str
    visitor_id: str
    occurred_at: datetime
    token_kind: str
    token: str


@dataclass(frozen=True, slots=True)
class Refund:
    refund_id: int
    amount_minor: int
    refunded_at: datetime


@dataclass(frozen=True, slots=True)
class Order:
    checkout: str
    # The shop's order number (1001, 1002, ... in order of time).
    number: int
    # Random capitals and digits that the platform's own ids for this order are made from.
    key: str
    visitor_id: str
    link: str
    token: str
    token_kind: str
    currency: str
    lines: tuple[Line, ...]
    shipping_minor: int
    ordered_at: datetime
    # The visit that started the buying session: what the order itself says about its source.
    landing: traffic.Landing
    # The buyer's email, the customer reference every platform sends; a returning customer's
    # later orders carry the same one.
    customer_ref: str = ""
    returning: bool = False
    refunds: tuple[Refund, ...] = ()

    @property
    def total_minor(self) -> int:
        return sum(line.total_minor for line in self.lines) + self.shipping_minor

    @property
    def refunded_minor(self) -> int:
        return sum(refund.amount_minor for refund in self.refunds)


@dataclass(frozen=True, slots=True)
class Day:
    """A day, or a period of days: what the collector and the platforms send."""

    touchpoints: tuple[Visit | Identify, ...]
    orders: tuple[Order, ...]
    # Rows of `POST /api/spend`, one per ad and day (none for a lone `demo_day`).
    spend: tuple[dict, ...] = ()

    def net_by_currency(self) -> dict[str, int]:
        """Sales minus refunds per currency: what the reports should show for the day."""
        net: Counter[str] = Counter()
        for order in self.orders:
            net[order.currency] += order.total_minor - order.refunded_minor
        return dict(net)


@dataclass
class _Customers:
    """The buyers so far: (email, checkout, currency) of each, for returning customers."""

    known: list[tuple[str, str, str]] = field(default_factory=list)
    count: int = 0

    def new(self) -> str:
        self.count += 1
        return f"buyer{self.count:05d}@{CUSTOMER_DOMAIN}"


# (seconds before the last visit, touchpoint id, landing) of each visit, oldest first
Journey = tuple[tuple[int, str, traffic.Landing], ...]


def demo_day(seed: int, visitors: int, now: datetime) -> Day:
    if visitors < MIN_VISITORS:
        raise ValueError(f"a demo day needs at least {MIN_VISITORS} visitors")
    rng = random.Random(seed)
    touchpoints, orders = _day(rng, visitors, _midnight(now), now, 1001, _Customers())
    return Day(
        tuple(sorted(touchpoints, key=lambda t: (t.occurred_at, t.touchpoint_id))),
        _with_refunds(rng, orders, now),
    )


def demo_period(seed: int, visitors: int, now: datetime, days: int = DEFAULT_DAYS) -> Day:
    """The current UTC day and the `days - 1` before it: about `visitors` a day (busier on
    weekdays and later in the period), returning customers, and every ad's spend of each day,
    in the same rhythm.

    Each day is drawn whole from its own generator (the seed and how many days back it is),
    so nothing drawn depends on the clock: the current day is cut at `now` (what happens after
    it is not sent yet), and its spend is its share of the day so far."""
    if visitors < MIN_VISITORS:
        raise ValueError(f"a demo day needs at least {MIN_VISITORS} visitors")
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"a demo period is 1 to {MAX_DAYS} days")
    today = _midnight(now)
    customers = _Customers()
    touchpoints: list[Visit | Identify] = []
    orders: list[Order] = []
    spend: list[dict] = []
    for back in range(days - 1, -1, -1):
        rng = random.Random(f"{seed}:{back}")
        start = today - timedelta(days=back)
        end = start + timedelta(days=1)
        factor = campaigns.day_factor(rng, start.date(), 1 - back / max(1, days - 1))
        count = max(MIN_VISITORS, round(visitors * factor))
        day_touchpoints, day_orders = _day(rng, count, start, end, 1001 + len(orders), customers)
        day_orders = _with_refunds(rng, day_orders, max(now, end))
        share = min(1.0, (now - start) / timedelta(days=1))
        spend += campaigns.spend_rows(rng, start.date(), factor, share)
        # Orders, visits and refunds after `now` have not happened yet.
        touchpoints += [t for t in day_touchpoints if t.occurred_at <= now]
        for order in day_orders:
            if order.ordered_at <= now:
                refunds = tuple(r for r in order.refunds if r.refunded_at <= now)
                orders.append(replace(order, refunds=refunds))
        # A customer returns on a later day, never on the day of their first order.
        customers.known += [
            (order.customer_ref, order.checkout, order.currency)
            for order in day_orders if not order.returning
        ]
    return Day(
        tuple(sorted(touchpoints, key=lambda t: (t.occurred_at, t.touchpoint_id))),
        tuple(orders),
        tuple(spend),
    )


def _midnight(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(timezone.utc).date(), time.min, tzinfo=timezone.utc)


def _day(
    rng: random.Random,
    visitors: int,
    start: datetime,
    end: datetime,
    first_number: int,
    customers: _Customers,
) -> tuple[list[Visit | Identify], list[Order]]:
    """`visitors` visitors whose last visit or order falls between `start` and `end`."""
    span = (end - start).total_seconds()
    buyers = set(rng.sample(range(visitors), round(visitors * BUYER_SHARE)))
    checkouts = _checkouts(rng, len(buyers))
    touchpoints: list[Visit | Identify] = []
    purchases = []
    for index in range(visitors):
        visitor_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        # When the visitor's last visit (or order) happens, as a share of the day so far.
        at_share = rng.uniform(0.02, 0.995)
        journey = _journey(rng, visitor_id)
        if index in buyers:
            customer = (
                rng.choice(customers.known)
                if customers.known and rng.random() < RETURNING_SHARE
                else None
            )
            purchase = _purchase(rng, checkouts.pop(), visitor_id, journey, customer, customers)
            purchases.append((at_share, purchase))
        else:
            touchpoints += _timed(visitor_id, journey, _at(start, span, at_share))
    orders = []
    purchases.sort(key=lambda purchase: purchase[0])
    for number, (at_share, purchase) in enumerate(purchases, start=first_number):
        order = purchase.order(number, _at(start, span, at_share))
        last_visit_at = order.ordered_at - purchase.checkout_time
        touchpoints += _timed(order.visitor_id, purchase.journey, last_visit_at)
        if order.link == "token":
            identify_at = order.ordered_at - purchase.identify_time
            touchpoints.append(
                Identify(
                    f"{order.visitor_id}-checkout",
                    order.visitor_id,
                    identify_at,
                    order.token_kind,
                    order.token,
                )
            )
        orders.append(order)
    return touchpoints, orders


@dataclass(frozen=True)
class _Purchase:
    """What is drawn for a buyer before the order's time and number are known."""

    visitor_id: str
    journey: Journey
    checkout: str
    details: dict
    # From the last visit to the order, and from the checkout page's identify to the order.
    checkout_time: timedelta
    identify_time: timedelta

    def order(self, number: int, ordered_at: datetime) -> Order:
        return Order(
            checkout=self.checkout,
            number=number,
            visitor_id=self.visitor_id,
            ordered_at=ordered_at,
            landing=self.journey[-1][2],
            **self.details,
        )


def _checkouts(rng: random.Random, count: int) -> list[str]:
    """One order per checkout at least (so a small day still shows every platform)."""
    chosen = list(CHECKOUTS[:count]) + rng.choices(
        CHECKOUTS, [share for _, share in CHECKOUT_SHARES], k=max(0, count - len(CHECKOUTS))
    )
    rng.shuffle(chosen)
    return chosen


def _journey(rng: random.Random, visitor_id: str) -> Journey:
    count = rng.choices((1, 2, 3, 4), (50, 28, 14, 8))[0]
    offsets = [0] + sorted(rng.randint(1_800, 3 * 86_400) for _ in range(count - 1))
    return tuple(
        (
            offset,
            f"{visitor_id}-{position}",
            traffic.landing(traffic.random_channel(rng, returning=position > 0), rng),
        )
        for position, offset in enumerate(reversed(offsets))
    )


def _timed(visitor_id: str, journey: Journey, last_visit_at: datetime) -> list[Visit]:
    return [
        Visit(touchpoint_id, visitor_id, last_visit_at - timedelta(seconds=offset), landing)
        for offset, touchpoint_id, landing in journey
    ]


def _purchase(
    rng: random.Random,
    checkout: str,
    visitor_id: str,
    journey: Journey,
    customer: tuple[str, str, str] | None,
    customers: _Customers,
) -> _Purchase:
    """A new customer's purchase, or `customer`'s again: same email, checkout and currency."""
    currencies = CHECKOUT_CURRENCIES[checkout]
    currency = rng.choices([c for c, _ in currencies], [share for _, share in currencies])[0]
    if customer is None:
        customer_ref = customers.new()
    else:
        customer_ref, checkout, currency = customer
    lines = catalogue.basket(rng, currency)
    details = {
        "key": "".join(rng.choices(_KEY_ALPHABET, k=17)),
        "link": rng.choices([link for link, _ in LINKS], [share for _, share in LINKS])[0],
        "token": f"{rng.getrandbits(128):032x}",
        "token_kind": CHECKOUT_TOKEN_KIND.get(checkout, "checkout_token"),
        "currency": currency,
        "lines": lines,
        "shipping_minor": catalogue.shipping(lines, currency),
        "customer_ref": customer_ref,
        "returning": customer is not None,
    }
    return _Purchase(
        visitor_id,
        journey,
        checkout,
        details,
        checkout_time=timedelta(seconds=rng.randint(4 * 60, 50 * 60)),
        identify_time=timedelta(seconds=rng.randint(20, 150)),
    )


def _with_refunds(rng: random.Random, orders: list[Order], now: datetime) -> tuple[Order, ...]:
    """A returned item (one unit of a line) or the whole order back, some time after the sale."""
    refunded = set(rng.sample(range(len(orders)), max(1, round(len(orders) * REFUND_SHARE))))
    result = []
    for index, order in enumerate(orders):
        if index in refunded:
            whole = rng.random() < 0.4
            amount = order.total_minor if whole else rng.choice(order.lines).unit_minor
            later = rng.uniform(0.3, 0.95) * (now - order.ordered_at).total_seconds()
            refunded_at = _whole_seconds(order.ordered_at + timedelta(seconds=later))
            refund = Refund(rng.randint(10**8, 10**9 - 1), amount, refunded_at)
            order = replace(order, refunds=(refund,))
        result.append(order)
    return tuple(result)


def _at(start: datetime, span: float, share: float) -> datetime:
    return _whole_seconds(start + timedelta(seconds=share * span))


def _whole_seconds(moment: datetime) -> datetime:
    # Some senders (Stripe) state times in whole seconds: every time here is one.
    return moment.replace(microsecond=0)
