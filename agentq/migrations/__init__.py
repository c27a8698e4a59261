"""Alembic migrations; a package so that ``agentq migrate`` finds them wherever it runs."""
