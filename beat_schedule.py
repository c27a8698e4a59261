"""Periodic work for ``celery beat``, in Celery's ``beat_schedule`` format.

Static entries live here; ``workers/app.py`` hands them to the Celery app, so
``celery -A workers.app beat`` fires them.
"""

from typing import Any

beat_schedule: dict[str, dict[str, Any]] = {}
