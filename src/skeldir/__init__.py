"""Skeldir: multi-tenant revenue attribution from verified commerce webhooks."""

__version__ = "0.1.0"
