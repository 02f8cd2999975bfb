"""Every provider's `parse` over hostile bodies and headers: bodies shaped like its real payloads
with hostile values anywhere, arbitrary JSON, invalid UTF-8 and arbitrary bytes.

Each one either gives a Delivery that PostgreSQL can store and that its redacted copy parses back
to, or raises UnprocessableEvent; never another exception, and always in bounded time.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hostile import (
    RAW_TOKENS,
    Raw,
    assert_storable,
    bodies_like,
    bounded_time,
    encode,
    fuzz_settings,
    headers_like,
)
from skeldir.base import money
from skeldir.domains.ingestion.event import EntryKind
from skeldir.domains.ingestion.inbox import entry_documents, order_document
from skeldir.domains.ingestion.provider import Delivery, UnprocessableEvent
from skeldir.domains.providers.registry import PROVIDERS
from skeldir.operations.reparse import stored_event_headers

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def _headers(provider: str, fixture_name: str) -> dict[str, str]:
    topic = fixture_name.split("__")[0]
    return {
        "shopify": {"x-shopify-topic": topic.replace("_", "/", 1), "x-shopify-event-id": "1"},
        "woocommerce": {"x-wc-webhook-topic": topic, "x-wc-webhook-delivery-id": "d-1"},
        "standard": {"webhook-id": "msg_1"},
    }.get(provider, {})


# The headers each parser reads; any other header is ignored by every parser.
HEADER_NAMES = {
    "shopify": ["x-shopify-topic", "shopify-topic", "x-shopify-event-id", "shopify-event-id"],
    "woocommerce": ["x-wc-webhook-topic", "x-wc-webhook-delivery-id"],
    "standard": ["webhook-id"],
    "stripe": ["stripe-signature"],
    "paypal": ["paypal-transmission-id"],
}


def seeds(provider: str) -> list[tuple[object, dict[str, str]]]:
    """(real payload document, the headers it came with) for each of the provider's fixtures."""
    found = []
    for path in sorted((FIXTURES / provider).glob("*.json")):
        document = json.loads(path.read_text())
        if "body" in document and "headers" in document:
            continue  # a recorded request (WooCommerce's ping), not a payload
        found.append((document, _headers(provider, path.name)))
    return found


def parse_or_refuse(name: str, body: bytes, headers: dict[str, str]) -> Delivery | None:
    provider = PROVIDERS[name]
    try:
        delivery = bounded_time(lambda: provider.parse(body, headers))
    except UnprocessableEvent as refused:
        reason = str(refused)
        assert reason and "\x00" not in reason and len(reason) < 500
        return None
    assert_stored_shape(name, delivery)
    return delivery


def assert_stored_shape(name: str, delivery: Delivery) -> None:
    """What the inbox writes is storable, in range, and the redacted copy parses back alike."""
    event = delivery.event
    for text in (delivery.topic, delivery.dedupe_key, event.external_order_id):
        assert isinstance(text, str) and 0 < len(text) <= 600 and text.isprintable(), text
    assert_storable(delivery.redacted_payload, "redacted_payload")
    assert_storable(order_document(event), "order")
    assert_storable(entry_documents(event), "entries")
    for amount in (event.total_minor, event.presentment_total_minor,
                   *(entry.amount_minor for entry in event.entries)):
        assert amount is None or money.BIGINT_MIN <= amount <= money.BIGINT_MAX
    # Sales add money and refunds take it away, whatever sign the sender wrote.
    assert event.total_minor >= 0 and (event.presentment_total_minor or 0) >= 0
    for entry in event.entries:
        sign = 1 if entry.kind is EntryKind.SALE else -1
        assert entry.amount_minor * sign >= 0, entry
    for currency in (event.currency, event.presentment_currency,
                     *(entry.currency for entry in event.entries)):
        assert currency is None or currency in money.MINOR_UNIT_EXPONENTS
    for moment in (event.ordered_at, event.updated_at, event.cancelled_at,
                   *(entry.occurred_at for entry in event.entries)):
        assert moment is None or (moment.utcoffset().total_seconds() == 0
                                  and EARLIEST <= moment <= LATEST), moment
    again = PROVIDERS[name].parse(
        orjson.dumps(delivery.redacted_payload),
        stored_event_headers(name, delivery.topic, delivery.dedupe_key),
    )
    assert again.event == event


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_every_fixture_parses_unchanged(name):
    """The seeds themselves are payloads the parser reads (else the fuzzing starts nowhere)."""
    parsed = [parse_or_refuse(name, encode(doc).encode(), headers) for doc, headers in seeds(name)]
    assert any(parsed), f"no {name} fixture parses"


@pytest.mark.parametrize("name", sorted(PROVIDERS))
@fuzz_settings(examples=150)
@given(data=st.data())
def test_hostile_bodies_parse_or_are_refused(name, data):
    documents = [document for document, _ in seeds(name)]
    body = data.draw(bodies_like(documents), label="body")
    _, headers = data.draw(st.sampled_from(seeds(name)), label="fixture headers")
    parse_or_refuse(name, body, headers)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
@fuzz_settings(examples=60)
@given(data=st.data())
def test_hostile_headers_parse_or_are_refused(name, data):
    document, headers = data.draw(st.sampled_from(seeds(name)), label="fixture")
    hostile = data.draw(headers_like(headers, HEADER_NAMES[name]), label="headers")
    parse_or_refuse(name, encode(document).encode(), hostile)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
@pytest.mark.parametrize("token", RAW_TOKENS, ids=lambda token: token[:12])
def test_every_raw_token_in_every_field(name, token):
    """Each hostile JSON token (1e400, NaN, 10,000 levels of nesting, "\\u0000", ...) in each
    field of each fixture, one at a time: exhaustive where the fuzzing above samples."""
    for document, headers in seeds(name):
        for path in _leaf_paths(document):
            body = encode(_replaced(document, path, Raw(token))).encode()
            parse_or_refuse(name, body, headers)


def _leaf_paths(document, prefix=()):
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _leaf_paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from _leaf_paths(value, (*prefix, index))
    else:
        yield prefix


def _replaced(document, path, value):
    if not path:
        return value
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[path[0]] = _replaced(document[path[0]], path[1:], value)
    return copy


@pytest.mark.parametrize(
    "order",
    [
        {"total_price": "-10.00"},
        {"total_price_set": {"shop_money": {"amount": "-1.00", "currency_code": "USD"}}},
        {"total_price_set": {"shop_money": {"amount": "1.00", "currency_code": "USD"},
                             "presentment_money": {"amount": "-1.00", "currency_code": "EUR"}}},
    ],
)
def test_a_shopify_order_with_a_negative_total_is_refused(order):
    # Regression: it was accepted and booked a negative sale.
    body = {"id": 1, "currency": "USD", "created_at": "2026-01-25T12:34:56Z", **order}
    with pytest.raises(UnprocessableEvent, match="is negative"):
        PROVIDERS["shopify"].parse(json.dumps(body).encode(), {"x-shopify-topic": "orders/paid"})


@pytest.mark.parametrize("name", sorted(PROVIDERS))
@fuzz_settings(examples=100)
@given(body=st.binary(max_size=2000))
@example(body=b"")
@example(body=b"\xef\xbb\xbf{}")
@example(body=b"[" * 100_000)
@example(body=b'{"a":' * 100_000)
@example(body=b"\x00" * 1000)
def test_arbitrary_bytes_are_refused_or_parsed(name, body):
    _, headers = seeds(name)[0]
    parse_or_refuse(name, body, headers)
