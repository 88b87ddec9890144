"""The code that proves a confirmed email during migration, sent through the outbox.

A code rather than a link: the proof is typed into the browser that holds the sign-in
(a link opened in a phone's mail app would land in another browser, without it).
Six digits, stored hashed and bound to the transaction and the email, valid 15 minutes;
five wrong tries void it, and a transaction may send five codes.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from idp.clock import utcnow
from idp.models import LegacyMigration, Portal
from idp.notify.outbox import queue_email
from idp.security.secrets import hash_secret

CODE_LIFETIME = timedelta(minutes=15)
MAX_CODES_SENT = 5
MAX_FAILED_ATTEMPTS = 5

WRONG_CODE = "That code doesn't match. Check the newest email we sent and try again."
EXPIRED_CODE = "That code has expired. Send a new code and use the one in the new email."
TOO_MANY_TRIES = "Too many wrong tries. Send a new code and use the one in the new email."
TOO_MANY_CODES = ("We have sent as many codes as we can for this sign-in. Go back to the site "
                  "you came from and sign in again.")


def _digest(migration: LegacyMigration, code: str) -> str:
    return hash_secret(f"{migration.tx_id}:{migration.email}:{code}")


def send_code(migration: LegacyMigration, portal: Portal) -> bool:
    """Queue a new code to the migration's email (the older one stops working)."""
    if migration.codes_sent >= MAX_CODES_SENT or not migration.email:
        return False
    code = f"{secrets.randbelow(10**6):06d}"
    migration.code_hash = _digest(migration, code)
    migration.code_expires_at = utcnow() + CODE_LIFETIME
    migration.codes_sent += 1
    migration.failed_attempts = 0
    queue_email(migration.email, "verify_email", code=code, name=migration.account.name,
                portal_name=portal.name, minutes=int(CODE_LIFETIME.total_seconds() // 60))
    return True


def check_code(migration: LegacyMigration, code: str) -> str | None:
    """None when `code` proves the email (recorded); otherwise why not, for the person."""
    if migration.failed_attempts >= MAX_FAILED_ATTEMPTS:
        return TOO_MANY_TRIES
    if migration.code_hash is None or migration.code_expires_at is None:
        return EXPIRED_CODE
    if utcnow() >= migration.code_expires_at:
        return EXPIRED_CODE
    typed = "".join(code.split())[:20]
    if not typed or not hmac.compare_digest(_digest(migration, typed), migration.code_hash):
        migration.failed_attempts += 1
        return TOO_MANY_TRIES if migration.failed_attempts >= MAX_FAILED_ATTEMPTS else WRONG_CODE
    mark_verified(migration)
    return None


def mark_verified(migration: LegacyMigration) -> None:
    """The email is proven (by a code, or by the password of its account)."""
    migration.verified_at = utcnow()
    migration.code_hash = None
    migration.code_expires_at = None
