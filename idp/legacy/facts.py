"""Facts the migration steps decide from (`migrate_legacy`, `verify_email`, `set_password`).

A migration is pending for a transaction when the person signing in (the transaction's
user, or the browser session's) is the placeholder of a legacy account whose migration is
due (`migration_due`); the steps' own facts are on the transaction's `LegacyMigration`.
"""

from __future__ import annotations

from idp.db import db
from idp.legacy.accounts import account_of_placeholder, migration_due, user_by_email
from idp.login.transaction import LoginState
from idp.models import LegacyAccount, LegacyMigration, User


def pending_account(state: LoginState) -> LegacyAccount | None:
    """The legacy account this sign-in must migrate first, or None."""
    account = account_of_placeholder(state.user)
    if account is None or not migration_due(account, state.client):
        return None
    return account


def migration_of(state: LoginState, account: LegacyAccount) -> LegacyMigration | None:
    """This transaction's migration facts for `account` (None before the email step)."""
    migration = db.session.execute(
        db.select(LegacyMigration).filter_by(tx_id=state.tx.id)
    ).scalar_one_or_none()
    if migration is None or migration.legacy_account_id != account.id:
        return None
    return migration


def start_migration(state: LoginState, account: LegacyAccount) -> LegacyMigration:
    """This transaction's migration row, made (or reset for `account`) on first use."""
    migration = db.session.execute(
        db.select(LegacyMigration).filter_by(tx_id=state.tx.id)
    ).scalar_one_or_none()
    if migration is None:
        migration = LegacyMigration(tx_id=state.tx.id, legacy_account_id=account.id,
                                    codes_sent=0, failed_attempts=0)
        db.session.add(migration)
    elif migration.legacy_account_id != account.id:
        migration.legacy_account_id = account.id
        migration.email = migration.code_hash = None
        migration.verified_at = None
        migration.failed_attempts = 0
    migration.account = account
    return migration


def existing_account(migration: LegacyMigration) -> User | None:
    """The account the confirmed email already has (then the legacy account joins it)."""
    if not migration.email:
        return None
    return user_by_email(migration.email)


def needs_new_password(migration: LegacyMigration) -> bool:
    """True unless the confirmed email's account already has a password."""
    existing = existing_account(migration)
    return existing is None or not existing.password_hash
