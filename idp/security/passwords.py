"""argon2id password hashing with parameters from configuration (NIST SP 800-63B 3.1.1.2)."""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from idp.config import SecuritySettings


class PasswordHashing:
    """Hashes and verifies passwords; `needs_rehash` tells when parameters changed."""

    def __init__(self, settings: SecuritySettings) -> None:
        # Parameters are set explicitly: the library defaults cost several times OWASP's.
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        # Verified against for unknown accounts, so both paths cost one argon2 verify.
        self._dummy_hash = self._hasher.hash("not a real password, only for timing")

    def hash(self, password: str) -> str:
        """A fresh argon2id hash of `password`."""
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when `password` matches; costs the same when there is no stored hash."""
        try:
            return self._hasher.verify(stored_hash or self._dummy_hash, password) and bool(
                stored_hash
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when the hash was made with other parameters than today's."""
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True
