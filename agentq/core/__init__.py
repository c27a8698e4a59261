"""Shared core of agentq: settings, database, models, store, errors and the Celery app.

Imports nothing else of agentq, so the API, workers, tasks and beat can all depend on it.
"""
