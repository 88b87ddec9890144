"""The `consent` step: third-party clients ask once per scope set; first-party skip it."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import scope_to_list
from authlib.oidc.core.errors import ConsentRequiredError

from idp.db import db
from idp.login.steps.base import Step
from idp.login.transaction import LoginState
from idp.models import Consent

SCOPE_DESCRIPTIONS = {
    "openid": "Know who you are",
    "profile": "See your name",
    "email": "See your email address",
    "phone": "See your phone number",
    "offline_access": "Stay connected when you are not using it",
}


def requested_scopes(state: LoginState) -> list[str]:
    return scope_to_list(state.client.get_allowed_scope(state.params.get("scope"))) or []


class ConsentStep(Step):
    name = "consent"
    prompt_none_error = ConsentRequiredError

    def is_needed(self, state: LoginState) -> bool:
        if state.tx.consented_scope is not None:
            return False
        if "consent" in state.prompts:
            return True
        if state.client.first_party:
            return False
        user = state.user
        if user is None:
            return True
        granted = db.session.get(Consent, (user.id, state.client.client_id))
        if granted is None:
            return True
        return not set(requested_scopes(state)) <= set(granted.scope.split())

    def render(self, state: LoginState, **context: Any) -> str:
        scopes = [(s, SCOPE_DESCRIPTIONS.get(s, s)) for s in requested_scopes(state)]
        return self.template(state, scopes=scopes, user=state.user, **context)

    def submit(self, state: LoginState, form: Any) -> None:
        """Record the grant; a refusal is handled by the view (access_denied)."""
        user = state.user
        assert user is not None  # the password step comes first
        scope = " ".join(requested_scopes(state))
        granted = db.session.get(Consent, (user.id, state.client.client_id))
        if granted is None:
            db.session.add(Consent(user_id=user.id, client_id=state.client.client_id, scope=scope))
        else:
            granted.scope = " ".join(sorted(set(granted.scope.split()) | set(scope.split())))
        state.tx.consented_scope = scope
        db.session.commit()
