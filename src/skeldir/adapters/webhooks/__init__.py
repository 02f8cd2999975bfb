"""The webhook edge: one generic route per provider, source resolution, then ingestion."""
