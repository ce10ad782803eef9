"""Password hashing with argon2id (memory-hard); verification runs off the event loop.

Hashes imported from new-api, one-api or Veloera (Go) are bcrypt (`$2a$`/`$2b$`, Go's
`golang.org/x/crypto/bcrypt` as used by `common/crypto.go`); they stay valid and are replaced by
an argon2 hash at the next successful login (`needs_rehash`).
"""

from __future__ import annotations

import asyncio

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()
# Verified against when the user does not exist, so both paths cost the same time.
_DUMMY_HASH = _HASHER.hash("veloera-dummy-password")
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


def hash_password_sync(password: str) -> str:
    return _HASHER.hash(password)


def is_bcrypt(password_hash: str) -> bool:
    return password_hash.startswith(_BCRYPT_PREFIXES)


def verify_password_sync(password_hash: str, password: str) -> bool:
    if is_bcrypt(password_hash):
        try:  # bcrypt only reads the first 72 bytes, as Go's bcrypt refuses longer ones
            secret = password.encode()
            return len(secret) <= 72 and bcrypt.checkpw(secret, password_hash.encode())
        except ValueError:  # a malformed stored hash
            return False
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True for an imported bcrypt hash or an argon2 hash with outdated parameters."""
    if is_bcrypt(password_hash):
        return True
    try:
        return bool(password_hash) and _HASHER.check_needs_rehash(password_hash)
    except InvalidHashError:
        return False


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(hash_password_sync, password)


async def verify_password(password_hash: str, password: str) -> bool:
    return await asyncio.to_thread(verify_password_sync, password_hash, password)
