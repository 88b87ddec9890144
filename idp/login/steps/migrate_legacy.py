"""The `migrate_legacy` step: a legacy username confirms the email that replaces it.

Needed when the person signing in is the placeholder of a legacy account whose portal's
migration date has come (`idp.legacy.facts.pending_account`) and no email is confirmed
yet in this transaction. The email on file is offered; a code goes to the one confirmed.
"""

from __future__ import annotations

from typing import Any

from authlib.oidc.core.errors import InteractionRequiredError

from idp.db import db
from idp.legacy.accounts import user_by_email
from idp.legacy.codes import TOO_MANY_CODES, send_code
from idp.legacy.facts import migration_of, pending_account, start_migration
from idp.login.steps.base import Step
from idp.login.transaction import LoginState
from idp.models.user import normalise_email
from idp.users import EMAIL_PATTERN

MAX_EMAIL = 320
INVALID_EMAIL = "Enter your email address, like name@example.org."
UNUSABLE_EMAIL = "This email address can't be used. Choose another one."


class MigrateLegacyStep(Step):
    name = "migrate_legacy"
    #: the person is not signed in as themselves until the migration is done
    authenticates = True
    prompt_none_error = InteractionRequiredError

    def is_needed(self, state: LoginState) -> bool:
        account = pending_account(state)
        if account is None:
            return False
        migration = migration_of(state, account)
        return migration is None or not migration.email

    def render(self, state: LoginState, **context: Any) -> str:
        account = pending_account(state)
        assert account is not None
        if "email" not in context:
            migration = migration_of(state, account)
            context["email"] = (migration.email if migration else None) or account.email or ""
        return self.template(state, account=account, portal=account.portal, **context)

    def submit(self, state: LoginState, form: Any) -> str | None:
        account = pending_account(state)
        assert account is not None
        email = normalise_email(form.get("email", ""))[:MAX_EMAIL]
        if not EMAIL_PATTERN.match(email):
            return self.render(state, email=email, error=INVALID_EMAIL)
        existing = user_by_email(email)
        if existing is not None and not existing.is_active:
            return self.render(state, email=email, error=UNUSABLE_EMAIL)
        migration = start_migration(state, account)
        migration.email = email
        migration.verified_at = None
        if not send_code(migration, account.portal):
            db.session.rollback()
            return self.render(state, email=email, error=TOO_MANY_CODES)
        db.session.commit()
        return None
