"""Secret runtime options (OAuth client secrets, SMTP and bot tokens, the EPay key) are kept
encrypted at rest with the same SecretBox as channel keys: a database dump or backup does not
hand them out. Services decrypt them only where they use them."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag

from services.shared.crypto import SecretBox

logger = logging.getLogger(__name__)

_SECRET_SUFFIXES = ("Token", "Secret", "Key", "_secret", "_token", "_key")
# Ends like a secret but is published in every page (the Turnstile widget needs it).
_PUBLIC_KEYS = frozenset({"TurnstileSiteKey"})
SEALED_PREFIX = "v1:"


def is_secret(key: str) -> bool:
    return key.endswith(_SECRET_SUFFIXES) and key not in _PUBLIC_KEYS


def seal(box: SecretBox, key: str, value: str) -> str:
    """The text to store for `key`: encrypted when it is a secret with a value."""
    if not value or not is_secret(key) or value.startswith(SEALED_PREFIX):
        return value
    return box.encrypt(value)


def unseal(box: SecretBox, key: str, stored: str) -> str:
    """The usable value of a stored option. A secret that cannot be decrypted (CRYPTO_SECRET
    changed) reads as unset, so the feature is off rather than the service down."""
    if not is_secret(key) or not stored.startswith(SEALED_PREFIX):
        return stored
    try:
        return box.decrypt(stored)
    except (InvalidTag, ValueError):
        logger.error("option %s cannot be decrypted with this CRYPTO_SECRET; treated as unset", key)
        return ""


def unsealed(box: SecretBox, stored: Mapping[str, str]) -> dict[str, str]:
    return {key: unseal(box, key, value) for key, value in stored.items()}


def plaintext_secrets(stored: Mapping[str, str]) -> dict[str, str]:
    """Stored secrets still in plaintext (written before encryption at rest): key -> value."""
    return {
        key: value
        for key, value in stored.items()
        if is_secret(key) and value and not value.startswith(SEALED_PREFIX)
    }
