"""Legacy usernames at the password step: verify the old hash, re-hash, hint after migration.

The password step calls `check_legacy_password` when an email and password did not sign
in. Failures at a portal with legacy accounts all answer alike: the same message, and no
sooner than the slowest failure seen (`pad_failed_attempt`), so that neither the message
nor the time tells an unknown username, a wrong old password (bcrypt, PBKDF2, ...) and a
wrong email password apart.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from flask import current_app

from idp.db import db
from idp.legacy.accounts import (
    accepts_legacy_usernames,
    ensure_placeholder,
    find_account,
    is_placeholder,
)
from idp.models import LegacyAccount, Portal, User
from idp.security.legacy_hashes import verify_legacy
from idp.security.password_policy import normalise_password

# Failed attempts answer no sooner than this, or than the slowest failure seen by this
# process (old hashes cost what their systems chose: bcrypt 12 is ~0.25 s), capped.
FAILURE_FLOOR_SECONDS = 0.25
FAILURE_CEILING_SECONDS = 1.0
_slowest = FAILURE_FLOOR_SECONDS
_slowest_lock = threading.Lock()


@dataclass(frozen=True)
class LegacyCheck:
    """What a legacy username and password amount to."""

    user: User | None = None  # sign in as this user (the placeholder until migrated)
    message: str | None = None  # shown instead of the usual error


def check_legacy_password(portal: Portal | None, username: str, typed: str) -> LegacyCheck:
    """Verify the password as `typed` against `portal`'s legacy account `username`, natively.

    On success the old hash is replaced by argon2id at once; the account then signs in
    as its placeholder (the login steps decide whether it must migrate first). A
    migrated username with the right password (old or new) gets a hint, not a sign-in.
    """
    if portal is None or not accepts_legacy_usernames(portal):
        return LegacyCheck()
    account = find_account(portal, username)
    if account is None:
        return LegacyCheck()
    if account.migrated_at is not None:
        return _migrated_hint(account, typed)
    if not account.password_hash or not account.password_scheme:
        return LegacyCheck()  # no password yet: the person is invited instead
    if not verifies(account, typed):
        return LegacyCheck()
    _rehash(account, normalise_password(typed))
    user = ensure_placeholder(account)
    db.session.commit()
    return LegacyCheck(user=user) if user.is_active else LegacyCheck()


def _rehash(account: LegacyAccount, password: str) -> None:
    """Replace an old hash by today's argon2id (the plaintext is at hand only now)."""
    hashing = current_app.extensions["idp"].passwords
    if account.password_scheme == "argon2" and account.password_hash \
            and not hashing.needs_rehash(account.password_hash):
        return
    account.password_hash = hashing.hash(password)
    account.password_scheme = "argon2"
    account.salt = None


def verifies(account: LegacyAccount, typed: str) -> bool:
    """True when `typed` matches the account's hash: as typed (old systems hashed what they
    got), or NFKC-normalised (our argon2id re-hash, and keyboards that differ)."""
    if not account.password_hash or not account.password_scheme:
        return False
    candidates = dict.fromkeys((typed, normalise_password(typed)))
    return any(verify_legacy(account.password_scheme, account.password_hash, account.salt, c)
               for c in candidates)


def _migrated_hint(account: LegacyAccount, typed: str) -> LegacyCheck:
    """"Sign in with your email now", only for someone who knows a password of the account.

    Without the password nothing tells a migrated username from an unknown one.
    """
    user = account.user
    if user is None or not user.is_active or is_placeholder(user):
        return LegacyCheck()
    hashing = current_app.extensions["idp"].passwords
    knows = hashing.verify(user.password_hash, normalise_password(typed)) \
        or verifies(account, typed)
    if not knows:
        return LegacyCheck()
    return LegacyCheck(message=(
        f"You now sign in with your email address ({mask_email(user.email)}) instead of "
        "your username, and the password you chose for it."
    ))


def mask_email(email: str) -> str:
    """`pat.doe@example.org` -> `p•••@example.org`: enough to recognise, not to harvest."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}"


def pad_failed_attempt(portal: Portal | None, started: float) -> None:
    """At a portal with legacy accounts, answer a failure no sooner than any other.

    Call with `time.perf_counter()` taken before the first lookup of the attempt.
    """
    global _slowest
    if portal is None or not accepts_legacy_usernames(portal):
        return
    elapsed = time.perf_counter() - started
    with _slowest_lock:
        _slowest = min(max(_slowest, elapsed), FAILURE_CEILING_SECONDS)
        target = max(_slowest, FAILURE_FLOOR_SECONDS)
    if elapsed < target:
        time.sleep(target - elapsed)
