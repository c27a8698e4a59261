"""Webhook signing secrets: made here, encrypted at rest, decrypted only to sign.

A secret is ``whsec_`` + base64 of 24 random bytes, as the Standard Webhooks
specification writes them. The database holds it encrypted with Fernet (AES-128-CBC and
an HMAC) under ``AGENTQ_WEBHOOK_SECRET_KEY``: a dump of the database alone cannot sign.
That setting may list several keys, comma-separated: the first encrypts, any decrypts,
so the key is rotated by putting a new one first.
"""

import base64
import secrets
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from agentq.core.errors import WebhooksUnavailable
from agentq.core.settings import settings

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


@cache
def _fernet(keys: str) -> MultiFernet:
    if not keys.strip():
        raise WebhooksUnavailable(
            "Webhooks need AGENTQ_WEBHOOK_SECRET_KEY (a Fernet key) to encrypt their secrets; "
            "the server has none."
        )
    return MultiFernet([Fernet(key.strip()) for key in keys.split(",") if key.strip()])


def check_configured() -> None:
    """Raise ``WebhooksUnavailable`` unless secrets can be encrypted."""
    _fernet(settings.webhook_secret_key)


def encrypt(secret: str) -> str:
    return _fernet(settings.webhook_secret_key).encrypt(secret.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet(settings.webhook_secret_key).decrypt(token.encode()).decode()
    except InvalidToken:
        raise WebhooksUnavailable(
            "A webhook secret does not decrypt with AGENTQ_WEBHOOK_SECRET_KEY (was the key changed?)"
        ) from None
