"""Attribution hints as stored (a JSON document on orders and touchpoints) and back."""

from __future__ import annotations

from skeldir.domains.ingestion.event import AttributionHints

_TEXT_FIELDS = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "utm_id",
    "skd_adset",
    "skd_ad",
    "landing_path",
    "referring_domain",
    "source_name",
)


def hints_from_document(document: dict | None) -> AttributionHints:
    document = document or {}
    click_ids = tuple(
        (str(pair[0]), str(pair[1])) for pair in document.get("click_ids") or () if len(pair) == 2
    )
    return AttributionHints(
        **{name: document.get(name) for name in _TEXT_FIELDS}, click_ids=click_ids
    )


def hints_document(hints: AttributionHints) -> dict:
    return {
        **{name: getattr(hints, name) for name in _TEXT_FIELDS},
        "click_ids": [list(pair) for pair in hints.click_ids],
    }
