"""Domains: ingestion, providers, attribution, reporting. Each imports only the ones below it."""
