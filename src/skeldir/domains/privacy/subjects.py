"""Who a privacy request is about, as the keys Skeldir holds: never an email or a name.

Customer references and emails are hashed on arrival with the tenant's stitch key, exactly as
orders and touchpoints hash them (`ingestion.stitching`), so the digests find the same rows and
the clear value is never stored. Visitor ids and order ids are kept as they are: they are
Skeldir's own pseudonymous keys, and an erasure's subject is emptied once it completes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from skeldir.domains.ingestion.stitching import CUSTOMER, stitch_key

MAX_IDENTIFIERS = 1000
_MAX_LENGTH = 256


class SubjectError(ValueError):
    """A request that names nobody, or names them badly."""


@dataclass(frozen=True)
class OrderRef:
    provider: str
    external_order_id: str


@dataclass(frozen=True)
class Subject:
    customer_keys: tuple[bytes, ...] = ()
    visitor_ids: tuple[str, ...] = ()
    orders: tuple[OrderRef, ...] = ()
    # shop/redact: every order that arrived through this source.
    source_id: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.customer_keys or self.visitor_ids or self.orders or self.source_id)

    def document(self) -> dict:
        """As stored in privacy_requests.subject: hex digests and ids only."""
        return {
            "customer_keys": [key.hex() for key in self.customer_keys],
            "visitor_ids": list(self.visitor_ids),
            "orders": [[o.provider, o.external_order_id] for o in self.orders],
            "source_id": self.source_id,
        }

    @classmethod
    def from_document(cls, document: Mapping | None) -> Subject:
        document = document or {}
        return cls(
            customer_keys=tuple(bytes.fromhex(k) for k in document.get("customer_keys") or ()),
            visitor_ids=tuple(document.get("visitor_ids") or ()),
            orders=tuple(OrderRef(p, o) for p, o in document.get("orders") or ()),
            source_id=document.get("source_id"),
        )


def subject_of(
    tenant_key: bytes,
    *,
    customer_refs: Iterable[str] = (),
    visitor_ids: Iterable[str] = (),
    orders: Iterable[OrderRef] = (),
    source_id: str | None = None,
) -> Subject:
    """The subject of a request, with customer references and emails hashed at once."""
    refs, visitors, order_refs = list(customer_refs), list(visitor_ids), list(orders)
    if len(refs) + len(visitors) + len(order_refs) > MAX_IDENTIFIERS:
        raise SubjectError(f"a request names at most {MAX_IDENTIFIERS} identifiers")
    for value in [*refs, *visitors, *(o.external_order_id for o in order_refs)]:
        if not isinstance(value, str) or not value.strip() or len(value) > _MAX_LENGTH:
            raise SubjectError(f"each identifier is a string of 1-{_MAX_LENGTH} characters")
    keys = [stitch_key(tenant_key, CUSTOMER, ref) for ref in refs]
    subject = Subject(
        customer_keys=tuple(dict.fromkeys(k for k in keys if k)),
        visitor_ids=tuple(dict.fromkeys(v.strip() for v in visitors)),
        orders=tuple(dict.fromkeys(order_refs)),
        source_id=source_id,
    )
    if subject.empty:
        raise SubjectError("name a customer reference, an email, a visitor id or an order")
    return subject
