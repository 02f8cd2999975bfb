"""The contract every webhook provider module fulfils: verify raw bytes, then parse."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from skeldir.domains.ingestion.event import CommerceEvent


class SignatureError(Exception):
    """The request is not proven to come from the source (answered 401, nothing stored)."""


class UnprocessableEvent(Exception):
    """A verified payload we cannot turn into a CommerceEvent (kept as a dead event)."""


@dataclass(frozen=True, slots=True)
class StitchRefs:
    """What links an order to a visitor's journey, as the sender gave it. Never stored or
    logged as is: the edge turns tokens and the customer reference (an email, say) into keyed
    digests before anything is written."""

    visitor_id: str | None = None
    checkout_token: str | None = None
    cart_token: str | None = None
    customer_ref: str | None = None

    def __repr__(self) -> str:
        present = [name for name in self.__slots__ if getattr(self, name)]
        return f"StitchRefs(<{', '.join(present) or 'none'}>)"


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a verified request means: its topic, the key that makes it unique, the event."""

    topic: str
    dedupe_key: str
    event: CommerceEvent
    # The payload projected onto the non-personal fields the parser reads, for re-parsing.
    redacted_payload: dict[str, Any]
    stitch: StitchRefs = StitchRefs()


@dataclass(frozen=True, slots=True)
class VerificationContext:
    """What a check may need besides the request: the source's settings and the clock."""

    # e.g. Stripe's "tolerance_seconds", PayPal's "webhook_id"
    source_settings: Mapping[str, Any] = field(default_factory=dict)
    now: float = field(default_factory=time.time)


class Provider(Protocol):
    name: str
    # True when verify may do blocking I/O (fetching a certificate): run it off the event loop.
    verify_may_block: bool
    # The header that names the topic, for providers that do not name it in the body.
    topic_header: str | None
    # The headers that carry the signature: a request to a source URL that names no source is
    # checked, against decoy secrets, by the provider whose signature it carries.
    signature_headers: tuple[str, ...]
    # Whether an unsigned request is the test a new endpoint receives (answered 200, not stored).
    ping: Callable[[bytes, Mapping[str, str]], bool] | None
    # Routes of the system Skeldir replaces: route name -> the topic it carried.
    legacy_routes: Mapping[str, str]

    def verify(
        self,
        body: bytes,
        headers: Mapping[str, str],
        secrets: Sequence[bytes],
        context: VerificationContext | None = None,
    ) -> None:
        """Raise SignatureError unless `body` is signed by one of `secrets`.

        `headers` has lower-case names. Must run in constant time per secret.
        """

    def parse(self, body: bytes, headers: Mapping[str, str]) -> Delivery:
        """Raise UnprocessableEvent when the verified payload cannot be used."""
