"""Secrets at rest: AES-GCM encryption and HMAC lookup keys, both derived from CRYPTO_SECRET."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import string

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_KEY_ALPHABET = string.ascii_letters + string.digits


class SecretBox:
    """Encrypts short secrets (API keys, channel keys) and computes their lookup HMAC.

    Two independent keys are derived from the one secret, so the lookup hash reveals nothing
    about the encryption key.
    """

    def __init__(self, crypto_secret: str) -> None:
        if not crypto_secret:
            raise ValueError("CRYPTO_SECRET must not be empty")
        root = crypto_secret.encode()
        self._enc_key = hmac.new(root, b"veloera/aes-gcm/v1", hashlib.sha256).digest()
        self._mac_key = hmac.new(root, b"veloera/hmac/v1", hashlib.sha256).digest()
        self._aead = AESGCM(self._enc_key)

    def encrypt(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), None)
        return "v1:" + base64.urlsafe_b64encode(nonce + sealed).decode()

    def decrypt(self, token: str) -> str:
        if not token.startswith("v1:"):
            raise ValueError("unknown ciphertext version")
        raw = base64.urlsafe_b64decode(token[3:])
        return self._aead.decrypt(raw[:12], raw[12:], None).decode()

    def lookup_hash(self, value: str) -> str:
        return hmac.new(self._mac_key, value.encode(), hashlib.sha256).hexdigest()


def random_key(length: int = 48) -> str:
    """A random alphanumeric key (API keys are 48 chars, access tokens 32)."""
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(length))


def mask_key(key: str) -> str:
    if len(key) <= 8:
        return "*" * len(key)
    return f"{key[:4]}{'*' * (len(key) - 8)}{key[-4:]}"
