"""Stitch keys: keyed HMACs of checkout tokens, cart tokens and customer references.

Orders and touchpoints carry the same tokens; storing only an HMAC under a per-tenant key lets
them be joined without keeping the token (or the customer's email) itself, and the key makes
the digests useless outside that tenant.
"""

from __future__ import annotations

import hashlib
import hmac

# Kinds of reference, in order of trust when linking an order to a visitor.
CHECKOUT = b"checkout"
CART = b"cart"
CUSTOMER = b"customer"


def stitch_key(tenant_key: bytes, kind: bytes, value: str | None) -> bytes | None:
    if value is None:
        return None
    normalised = value.strip()
    if kind == CUSTOMER:
        # Emails differ in case and padding only in ways that name the same person.
        normalised = normalised.lower()
    if not normalised:
        return None
    return hmac.new(tenant_key, kind + b":" + normalised.encode(), hashlib.sha256).digest()


def order_stitch(refs, tenant_key: bytes | None) -> dict[str, str | None]:
    """The order's stitch columns as the ingest function reads them (digests in hex)."""

    def hexed(kind: bytes, value: str | None) -> str | None:
        digest = stitch_key(tenant_key, kind, value) if tenant_key else None
        return digest.hex() if digest else None

    return {
        "visitor_id": refs.visitor_id,
        "checkout_key": hexed(CHECKOUT, refs.checkout_token),
        "cart_key": hexed(CART, refs.cart_token),
        "customer_key": hexed(CUSTOMER, refs.customer_ref),
    }
