"""Platform bodies built to the documented shapes, where no real capture exists (see
../shared/fixtures/ads/PROVENANCE.md, "Shapes")."""

from __future__ import annotations


def meta_row(day: str, ad: str, spend: str, **extra) -> dict:
    """An ad-level daily insights row as Meta writes it: every value a string."""
    return {"account_currency": "EUR", "campaign_id": "23850000000000001",
            "campaign_name": "Spring", "adset_id": "23850000000000002",
            "adset_name": "Lookalike", "ad_id": ad, "ad_name": f"Ad {ad}", "spend": spend,
            "impressions": "1000", "clicks": "12", "date_start": day, "date_stop": day,
            **extra}


def meta_page(rows: list[dict], next_url: str | None = None) -> dict:
    """An insights page: `paging.next` only when another page exists."""
    paging: dict = {"cursors": {"before": "QVFIUmJF", "after": "QVFIUmFm"}}
    if next_url:
        paging["next"] = next_url
    return {"data": rows, "paging": paging}
