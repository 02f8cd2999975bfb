"""The demo day in the shapes its senders use: collector touchpoints, and each platform's
webhook documents for an order and its refunds.

PayPal is the exception. It signs with its own certificate, which nothing local can produce,
so a PayPal order is relayed the way a shop's own backend would relay it: as a Standard
Webhooks order (see docs/demo.md).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

from skeldir.base.money import format_minor
from skeldir.operations.demo.journeys import Identify, Order, Refund, Visit
from skeldir.operations.demo.traffic import SHOP_URL

# Which connected source carries each checkout's webhooks.
SOURCE_OF_CHECKOUT = {
    "shopify": "shopify",
    "stripe": "stripe",
    "woocommerce": "woocommerce",
    "paypal": "standard",
    "standard": "standard",
}
SHOPIFY_ORDER_IDS = 6_180_000_000_000
WOOCOMMERCE_ORDER_IDS = 48_000
# Delivery ids are derived from the order, so sending a day twice is a duplicate, not new data.
_DELIVERY_IDS = uuid.uuid5(uuid.NAMESPACE_URL, SHOP_URL)


@dataclass(frozen=True, slots=True)
class Message:
    """One webhook delivery before it is signed."""

    source: str
    topic: str
    # The sender's id of this delivery (what the source dedupes on).
    delivery_id: str
    sent_at: datetime
    document: dict


def touchpoint_item(touchpoint: Visit | Identify) -> dict:
    """An item of `POST /api/touchpoints`, as collect.js sends it."""
    item = {
        "id": touchpoint.touchpoint_id,
        "visitor_id": touchpoint.visitor_id,
        "occurred_at": _iso(touchpoint.occurred_at),
    }
    if isinstance(touchpoint, Identify):
        return {
            **item,
            "kind": "identify",
            "url": f"{SHOP_URL}/checkout",
            touchpoint.token_kind: touchpoint.token,
        }
    return {**item, "url": touchpoint.landing.url, "referrer": touchpoint.landing.referrer}


def messages(order: Order) -> list[Message]:
    """The order's webhooks, the sale first and then each refund, as its checkout sends them."""
    build = {
        "shopify": _shopify,
        "stripe": _stripe,
        "woocommerce": _woocommerce,
        "paypal": _standard,
        "standard": _standard,
    }[order.checkout]
    return build(order)


def external_order_id(order: Order) -> str:
    """The order's id as the receiving source knows it."""
    if order.checkout == "shopify":
        return str(SHOPIFY_ORDER_IDS + order.number)
    if order.checkout == "stripe":
        return f"pi_3Demo{order.key}"
    if order.checkout == "woocommerce":
        return str(WOOCOMMERCE_ORDER_IDS + order.number)
    if order.checkout == "paypal":
        return f"paypal-{order.key}"
    return f"web-{order.number}"


def _delivery_id(order: Order, what: str) -> str:
    return str(uuid.uuid5(_DELIVERY_IDS, f"{order.checkout}:{order.key}:{what}"))


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- Shopify: REST Order and Refund bodies --------------------------------------------------


def _shopify(order: Order) -> list[Message]:
    order_id = SHOPIFY_ORDER_IDS + order.number
    total = format_minor(order.total_minor, order.currency)
    money = {"amount": total, "currency_code": order.currency}
    landing = order.landing
    document = {
        "id": order_id,
        "name": f"#{order.number}",
        "order_number": order.number,
        "created_at": _iso(order.ordered_at),
        "processed_at": _iso(order.ordered_at),
        "updated_at": _iso(order.ordered_at + timedelta(seconds=2)),
        "currency": order.currency,
        "presentment_currency": order.currency,
        "financial_status": "paid",
        "total_price": total,
        "total_price_set": {"shop_money": money, "presentment_money": money},
        "total_shipping_price_set": {
            "shop_money": {
                "amount": format_minor(order.shipping_minor, order.currency),
                "currency_code": order.currency,
            }
        },
        "checkout_token": order.token,
        "email": order.customer_ref,
        "source_name": "web",
        "landing_site": landing.url.removeprefix(SHOP_URL),
        "referring_site": landing.referrer or "",
        # The storefront's cart attribute; the leading "_" hides it from the buyer.
        "note_attributes": (
            [{"name": "_skeldir_visitor_id", "value": order.visitor_id}]
            if order.link == "visitor"
            else []
        ),
        "line_items": [
            {
                "title": line.product,
                "quantity": line.quantity,
                "price": format_minor(line.unit_minor, order.currency),
            }
            for line in order.lines
        ],
        "refunds": [],
    }
    sale = Message(
        "shopify", "orders/create", _delivery_id(order, "create"), order.ordered_at, document
    )
    return [sale, *(_shopify_refund(order, order_id, refund) for refund in order.refunds)]


def _shopify_refund(order: Order, order_id: int, refund: Refund) -> Message:
    at = _iso(refund.refunded_at)
    document = {
        "id": refund.refund_id,
        "order_id": order_id,
        "created_at": at,
        "processed_at": at,
        "transactions": [
            {
                "id": refund.refund_id + 1,
                "order_id": order_id,
                "kind": "refund",
                "status": "success",
                "amount": format_minor(refund.amount_minor, order.currency),
                "currency": order.currency,
                "created_at": at,
            }
        ],
    }
    delivery_id = _delivery_id(order, f"refund:{refund.refund_id}")
    return Message("shopify", "refunds/create", delivery_id, refund.refunded_at, document)


# --- Stripe: snapshot events of the PaymentIntent and its Charge ----------------------------


def _stripe(order: Order) -> list[Message]:
    # Stripe's minor units are ISO 4217's for every currency the demo sells in.
    intent_id, charge_id = f"pi_3Demo{order.key}", f"ch_3Demo{order.key}"
    created = int(order.ordered_at.timestamp())
    metadata = {
        "order_number": str(order.number),
        "landing_url": order.landing.url,
        **({"referrer": order.landing.referrer} if order.landing.referrer else {}),
        **({"skeldir_visitor_id": order.visitor_id} if order.link == "visitor" else {}),
        "checkout_token": order.token,
    }
    intent = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": order.total_minor,
        "amount_received": order.total_minor,
        "currency": order.currency.lower(),
        "created": created,
        "status": "succeeded",
        "latest_charge": charge_id,
        "payment_method_types": ["card"],
        "receipt_email": order.customer_ref,
        "metadata": metadata,
    }
    sale = Message(
        "stripe",
        "payment_intent.succeeded",
        f"evt_3Demo{order.key}S",
        order.ordered_at,
        _stripe_event(f"evt_3Demo{order.key}S", "payment_intent.succeeded", created, intent),
    )
    refunds, refunded = [], 0
    for index, refund in enumerate(order.refunds):
        charge = {
            "id": charge_id,
            "object": "charge",
            "amount": order.total_minor,
            "amount_captured": order.total_minor,
            "amount_refunded": refunded + refund.amount_minor,
            "captured": True,
            "paid": True,
            "refunded": refunded + refund.amount_minor == order.total_minor,
            "status": "succeeded",
            "currency": order.currency.lower(),
            "created": created,
            "payment_intent": intent_id,
            "metadata": metadata,
        }
        event_id = f"evt_3Demo{order.key}R{index}"
        at = int(refund.refunded_at.timestamp())
        event = _stripe_event(event_id, "charge.refunded", at, charge)
        # API versions since 2022-11-15 list no refunds: the step is read from here.
        event["data"]["previous_attributes"] = {"amount_refunded": refunded, "refunded": False}
        refunds.append(Message("stripe", "charge.refunded", event_id, refund.refunded_at, event))
        refunded += refund.amount_minor
    return [sale, *refunds]


def _stripe_event(event_id: str, event_type: str, created: int, obj: dict) -> dict:
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "type": event_type,
        "data": {"object": obj},
    }


# --- WooCommerce: the wc/v3 Order, created and then updated by a refund ---------------------


def _woocommerce(order: Order) -> list[Message]:
    order_id = WOOCOMMERCE_ORDER_IDS + order.number
    created = order.ordered_at.replace(tzinfo=None).isoformat()
    document = {
        "id": order_id,
        "number": str(order.number),
        "status": "processing",
        "currency": order.currency,
        "total": format_minor(order.total_minor, order.currency),
        "shipping_total": format_minor(order.shipping_minor, order.currency),
        "date_created": created,
        "date_created_gmt": created,
        "date_modified": created,
        "date_modified_gmt": created,
        "payment_method": "stripe",
        "created_via": "checkout",
        "billing": {"email": order.customer_ref},
        "meta_data": _woocommerce_meta(order),
        "line_items": [
            {
                "name": line.product,
                "quantity": line.quantity,
                "total": format_minor(line.total_minor, order.currency),
            }
            for line in order.lines
        ],
        "refunds": [],
    }
    sale = Message(
        "woocommerce", "order.created", _delivery_id(order, "created"), order.ordered_at, document
    )
    result, refunded = [sale], 0
    for refund in order.refunds:
        refunded += refund.amount_minor
        modified = refund.refunded_at.replace(tzinfo=None).isoformat()
        refund_item = {
            "id": refund.refund_id,
            "total": format_minor(-refund.amount_minor, order.currency),
        }
        # Each update is the whole order again, its refunds so far included.
        document = {
            **document,
            "status": "refunded" if refunded == order.total_minor else "processing",
            "date_modified": modified,
            "date_modified_gmt": modified,
            "refunds": [*document["refunds"], refund_item],
        }
        delivery_id = _delivery_id(order, f"refund:{refund.refund_id}")
        result.append(
            Message("woocommerce", "order.updated", delivery_id, refund.refunded_at, document)
        )
    return result


def _woocommerce_meta(order: Order) -> list[dict]:
    """The order attribution WooCommerce records from the session, and the shop's own link."""
    landing = order.landing
    meta = {}
    if order.link == "visitor":
        meta["_skeldir_visitor_id"] = order.visitor_id
    meta["_skeldir_cart_token"] = order.token
    query = dict(parse_qsl(urlsplit(landing.url).query))
    if "utm_source" in query:
        meta["_wc_order_attribution_source_type"] = "utm"
        for key in ("utm_source", "utm_medium", "utm_campaign"):
            meta[f"_wc_order_attribution_{key}"] = query[key]
    elif landing.referrer:
        meta["_wc_order_attribution_source_type"] = (
            "organic" if landing.channel == "organic_search" else "referral"
        )
        meta["_wc_order_attribution_referrer"] = landing.referrer
    else:
        meta["_wc_order_attribution_source_type"] = "typein"
        meta["_wc_order_attribution_utm_source"] = "(direct)"
    meta["_wc_order_attribution_session_entry"] = landing.url
    return [
        {"id": 9000 + index, "key": key, "value": value}
        for index, (key, value) in enumerate(meta.items())
    ]


# --- Standard Webhooks: the generic order and refund of docs/providers/standard.md ----------


def _standard(order: Order) -> list[Message]:
    order_id = external_order_id(order)
    attribution = {
        "landing_url": order.landing.url,
        **({"referrer": order.landing.referrer} if order.landing.referrer else {}),
        "source_name": "web",
        **({"visitor_id": order.visitor_id} if order.link == "visitor" else {}),
        "checkout_token": order.token,
    }
    document = {
        "type": "order.created",
        "timestamp": _iso(order.ordered_at),
        "data": {
            "order_id": order_id,
            "currency": order.currency,
            "total": format_minor(order.total_minor, order.currency),
            "status": "paid",
            "created_at": _iso(order.ordered_at),
            "customer_ref": order.customer_ref,
            "attribution": attribution,
        },
    }
    sale = Message("standard", "order.created", f"msg_{order.key}S", order.ordered_at, document)
    refunds = [
        Message(
            "standard",
            "refund.created",
            f"msg_{order.key}R{refund.refund_id}",
            refund.refunded_at,
            {
                "type": "refund.created",
                "timestamp": _iso(refund.refunded_at),
                "data": {
                    "order_id": order_id,
                    "currency": order.currency,
                    "refund": {
                        "id": f"R-{refund.refund_id}",
                        "amount": format_minor(refund.amount_minor, order.currency),
                        "created_at": _iso(refund.refunded_at),
                    },
                },
            },
        )
        for refund in order.refunds
    ]
    return [sale, *refunds]
