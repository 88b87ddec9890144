"""The `set_password` step: the migrated person chooses the password for their email.

Needed once the confirmed email is proven while the migration is still pending: the
email has no account yet (or one without a password). The legacy password, whatever it
was, is replaced here, under today's password policy (so a legacy password that fails
the policy signed in once, and no more).
"""

from __future__ import annotations

from typing import Any

from authlib.oidc.core.errors import InteractionRequiredError
from flask import current_app

from idp.legacy.accounts import finish_migration
from idp.legacy.facts import migration_of, needs_new_password, pending_account
from idp.login.steps.base import Step
from idp.login.transaction import LoginState
from idp.models import LegacyAccount, LegacyMigration
from idp.security.password_policy import normalise_password, password_problems

MAX_FIELD = 1024


class SetPasswordStep(Step):
    name = "set_password"
    authenticates = True
    prompt_none_error = InteractionRequiredError

    def is_needed(self, state: LoginState) -> bool:
        account = pending_account(state)
        if account is None:
            return False
        migration = migration_of(state, account)
        return migration is not None and migration.verified_at is not None

    def _facts(self, state: LoginState) -> tuple[LegacyAccount, LegacyMigration]:
        account = pending_account(state)
        assert account is not None
        migration = migration_of(state, account)
        assert migration is not None and migration.email
        return account, migration

    def render(self, state: LoginState, **context: Any) -> str:
        account, migration = self._facts(state)
        context.setdefault("problems", [])
        return self.template(state, account=account, portal=account.portal,
                             email=migration.email, policy=account.portal.policy,
                             needs_password=needs_new_password(migration), **context)

    def submit(self, state: LoginState, form: Any) -> str | None:
        account, migration = self._facts(state)
        if not needs_new_password(migration):
            # The email's account got a password since it was proven: join it as it is.
            finish_migration(migration, state.tx, password_hash=None)
            return None
        password = normalise_password(form.get("password", "")[:MAX_FIELD])
        policy = account.portal.policy
        problems = password_problems(password, policy, migration.email, account.portal.name)
        if problems:
            return self.render(state, problems=problems)
        hashing = current_app.extensions["idp"].passwords
        finish_migration(migration, state.tx, password_hash=hashing.hash(password))
        return None
