"""API keys: random secrets shown once; only their SHA-256 is stored.

Keys carry 256 bits of randomness, so a fast hash is enough (no password stretching).
"""

import hashlib
import secrets

from agentq.core import store
from agentq.core.models import ApiKey, utcnow

PREFIX = "aq_"


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(name: str) -> tuple[ApiKey, str]:
    """A new key and its secret; the secret is not kept anywhere."""
    secret = PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=store.new_id(), name=name, prefix=secret[:10], key_hash=hash_key(secret), created_at=utcnow()
    )
    return store.create_api_key(key), secret
