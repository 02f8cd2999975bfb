"""An order's path: the touchpoints of the visitor it was stitched to, or its own landing page.

Pure: the caller fetched the visitor's touchpoints; this turns them into the canonical path
the models read, with each touchpoint's channel from the tenant's rules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from skeldir.domains.attribution.models import Touchpoint, canonical_path
from skeldir.domains.ingestion.event import AttributionHints
from skeldir.domains.ingestion.hints import hints_from_document

Classifier = Callable[[AttributionHints], str]


def order_path(
    touchpoints: Sequence[tuple[str, datetime, dict]],
    order_hints: dict,
    ordered_at: datetime,
    classify: Classifier,
    lookback: timedelta,
) -> tuple[Touchpoint, ...]:
    """The canonical path; with no touchpoint in the window, the order's own landing touch.

    `touchpoints` are (touchpoint id, time, stored hints) of the stitched visitor.
    """
    journey = [
        Touchpoint(classify(hints_from_document(hints)), occurred_at, touchpoint_id)
        for touchpoint_id, occurred_at, hints in touchpoints
    ]
    path = canonical_path(journey, ordered_at, lookback)
    if path:
        return path
    return (Touchpoint(classify(hints_from_document(order_hints)), ordered_at, None),)
