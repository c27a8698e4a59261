"""Celery task shells: they handle messages and retries; the logic lives in ``workers/``."""
