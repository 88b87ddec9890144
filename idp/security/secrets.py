"""High-entropy secrets: generation, hashing for storage, constant-time comparison.

Codes, tokens and client secrets are random and long, so a keyed SHA-256 is the right
hash for them (a password hash would only cost CPU); the plaintext is never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def generate_secret(nbytes: int = 32) -> str:
    """A URL-safe random string with `nbytes` bytes of entropy."""
    return secrets.token_urlsafe(nbytes)


def hash_secret(value: str) -> str:
    """The stored form of a random secret: hex SHA-256."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def secret_matches(value: str, stored_hash: str | None) -> bool:
    """Constant-time check of `value` against a stored `hash_secret`."""
    if not stored_hash:
        return False
    return hmac.compare_digest(hash_secret(value), stored_hash)
