"""The `verify_email` step: the code sent to the confirmed email, or that account's password.

Needed while the confirmed email of a pending migration is not proven. When the email
already has an account with a password, proving it (by the code, or by that password)
links the legacy account into it at once: one person, one account. The page offers the
password way whether or not the email has an account, so it tells nobody which do.
"""

from __future__ import annotations

from typing import Any

from authlib.oidc.core.errors import InteractionRequiredError
from flask import current_app

from idp.db import db
from idp.legacy.accounts import finish_migration
from idp.legacy.codes import TOO_MANY_CODES, check_code, mark_verified, send_code
from idp.legacy.facts import existing_account, migration_of, needs_new_password, pending_account
from idp.login.steps.base import Step
from idp.login.transaction import LoginState
from idp.models import LegacyAccount, LegacyMigration
from idp.security.password_policy import normalise_password

WRONG_PASSWORD = ("That password doesn't match the account of this email. Try again, or use "
                  "the code.")
CODE_SENT = "We sent a new code. Use the one in the newest email."
MAX_FIELD = 1024


class VerifyEmailStep(Step):
    name = "verify_email"
    authenticates = True
    prompt_none_error = InteractionRequiredError

    def is_needed(self, state: LoginState) -> bool:
        account = pending_account(state)
        if account is None:
            return False
        migration = migration_of(state, account)
        return migration is not None and bool(migration.email) and migration.verified_at is None

    def _facts(self, state: LoginState) -> tuple[LegacyAccount, LegacyMigration]:
        account = pending_account(state)
        assert account is not None
        migration = migration_of(state, account)
        assert migration is not None
        return account, migration

    def render(self, state: LoginState, **context: Any) -> str:
        account, migration = self._facts(state)
        return self.template(state, account=account, portal=account.portal,
                             migration=migration, **context)

    def submit(self, state: LoginState, form: Any) -> str | None:
        account, migration = self._facts(state)
        action = form.get("action", "verify")
        if action == "change":
            migration.email = None
            migration.code_hash = migration.code_expires_at = None
            db.session.commit()
            return None
        if action == "resend":
            sent = send_code(migration, account.portal)
            db.session.commit()
            return self.render(state, notice=CODE_SENT if sent else None,
                               error=None if sent else TOO_MANY_CODES)
        if action == "password":
            problem = self._check_account_password(migration, form.get("password", ""))
        else:
            problem = check_code(migration, form.get("code", ""))
        if problem is not None:
            db.session.commit()  # the failed try counts
            return self.render(state, error=problem)
        if not needs_new_password(migration):
            # The email's account has a password: the legacy account joins it now.
            finish_migration(migration, state.tx, password_hash=None)
        db.session.commit()
        return None

    def _check_account_password(self, migration: LegacyMigration, typed: str) -> str | None:
        """None when `typed` is the password of the email's account (recorded as proof)."""
        from idp.legacy.codes import MAX_FAILED_ATTEMPTS, TOO_MANY_TRIES

        if migration.failed_attempts >= MAX_FAILED_ATTEMPTS:
            return TOO_MANY_TRIES
        existing = existing_account(migration)
        password = normalise_password(typed[:MAX_FIELD])
        hashing = current_app.extensions["idp"].passwords
        # Verified even without an account, so the time says nothing about it.
        valid = hashing.verify(existing.password_hash if existing else None, password)
        if existing is None or not valid or not existing.is_active:
            migration.failed_attempts += 1
            return TOO_MANY_TRIES if migration.failed_attempts >= MAX_FAILED_ATTEMPTS \
                else WRONG_PASSWORD
        mark_verified(migration)
        return None
