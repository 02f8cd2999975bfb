"""Adapters: the HTTP app and API, the webhook edge, the CLI, Celery tasks, the dashboard."""
