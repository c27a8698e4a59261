"""API keys: stored by their hash; a key's id is the owner of what it creates."""

from sqlalchemy import select

from agentq.core.db import session_scope
from agentq.core.models import ApiKey, utcnow


def create_api_key(key: ApiKey) -> ApiKey:
    with session_scope() as session:
        session.add(key)
    return key


def list_api_keys() -> list[ApiKey]:
    with session_scope() as session:
        return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_api_key(key_id: str) -> ApiKey | None:
    with session_scope() as session:
        row = session.get(ApiKey, key_id)
        if row is not None and row.revoked_at is None:
            row.revoked_at = utcnow()
        return row


def owner_of_key(key_hash: str) -> str | None:
    """The owner (key id) of a live key with this hash."""
    with session_scope() as session:
        return session.scalar(
            select(ApiKey.id).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )
