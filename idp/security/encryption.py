"""Encryption at rest (signing keys, TOTP seeds) with rotatable Fernet keys.

The first configured key encrypts; every key decrypts, so a new key can be put first
and old ciphertexts re-encrypted at leisure (`MultiFernet.rotate`).
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from idp.config import ConfigError


class Encryptor:
    """Encrypts and decrypts small values with the configured keys."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        if not keys:
            raise ConfigError("security.encryption_keys: at least one key is required")
        try:
            fernets = [Fernet(key.encode("ascii")) for key in keys]
            self._first = fernets[0]
            self._fernet = MultiFernet(fernets)
        except (ValueError, UnicodeEncodeError):
            raise ConfigError(
                "security.encryption_keys: each key must be 32 url-safe base64-encoded bytes"
                " (make one with `idp keys generate-encryption-key`)"
            ) from None

    def encrypt(self, plaintext: bytes) -> str:
        return self._fernet.encrypt(plaintext).decode("ascii")

    def decrypt(self, ciphertext: str) -> bytes:
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii"))
        except InvalidToken:
            raise ConfigError(
                "security.encryption_keys: none of the keys decrypts stored data"
            ) from None

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt under the first (newest) key."""
        try:
            return self._fernet.rotate(ciphertext.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise ConfigError(
                "security.encryption_keys: none of the keys decrypts stored data"
            ) from None

    def is_current(self, ciphertext: str) -> bool:
        """True when the first key alone decrypts `ciphertext` (nothing to re-encrypt)."""
        try:
            self._first.decrypt(ciphertext.encode("ascii"))
        except InvalidToken:
            return False
        return True


def generate_encryption_key() -> str:
    return Fernet.generate_key().decode("ascii")
