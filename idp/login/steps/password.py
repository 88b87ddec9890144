"""The `password` step: email and password, with one message for every failure."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from authlib.oidc.core.errors import LoginRequiredError
from flask import current_app, request
from werkzeug.wrappers import Response

from idp import audit
from idp.clock import utcnow
from idp.db import db
from idp.legacy.accounts import accepts_legacy_usernames
from idp.legacy.signin import check_legacy_password, pad_failed_attempt
from idp.login.steps.base import Step
from idp.login.transaction import LoginState, rebind_transaction
from idp.mfa import passkey_sign_in
from idp.models import IdpSession, User
from idp.models.user import normalise_email
from idp.ops import metrics
from idp.policy import LoginPolicy
from idp.security import throttle
from idp.security.password_policy import normalise_password

WRONG_CREDENTIALS = "That email and password don't match an account. Check both and try again."
MAX_FIELD = 1024


def outlives_policy(record: IdpSession, policy: LoginPolicy) -> bool:
    """True when a session made under another portal's policy is older than this one allows.

    A session kept 90 days at one portal must not sign someone in at a portal that
    allows 7 (or, without "Keep me signed in", its own session maximum).
    """
    if record.persistent:
        limit = timedelta(days=policy.keep_me_signed_in_max_days)
    else:
        limit = timedelta(hours=policy.session_max_hours)
    return utcnow() - record.auth_time >= limit


def throttled_message(verdict: throttle.Verdict) -> str:
    if verdict.locked:
        return ("For your security, signing in with a password is paused after too many "
                "failed attempts. Choose a new password with “Password not working?”.")
    return (f"Too many attempts. For your security, please wait "
            f"{throttle.wait_text(verdict.wait_seconds)} and try again.")


class PasswordStep(Step):
    name = "password"
    authenticates = True
    prompt_none_error = LoginRequiredError

    def is_needed(self, state: LoginState) -> bool:
        if state.tx.authenticated_at is not None:
            return False
        user = state.user
        if user is None or "login" in state.prompts:
            return True
        if state.id_token_hint_sub is not None and state.id_token_hint_sub != user.sub:
            return True
        if state.session is not None and outlives_policy(state.session, state.client.policy):
            return True
        max_age = state.params.get("max_age")
        auth_time = state.auth_time
        if max_age and auth_time is not None:  # "" counts as omitted (RFC 6749 3.1)
            # OIDC Core 3.1.2.1: re-authenticate when the last one is older than max_age.
            return utcnow() - auth_time > timedelta(seconds=int(max_age))
        return False

    def render(self, state: LoginState, **context: Any) -> str:
        email = context.pop("email", None)
        if email is None:
            email = state.params.get("login_hint", "")
        # Portals with legacy accounts also take their old usernames here (issue 4).
        legacy = accepts_legacy_usernames(state.client.portal)
        return self.template(state, email=email, policy=state.client.policy,
                             legacy_usernames=legacy, **passkey_sign_in.page_context(state),
                             **context)

    def submit(self, state: LoginState, form: Any) -> Response | str | None:
        if form.get("credential"):  # "Sign in with a passkey" instead of the password
            problem = passkey_sign_in.sign_in_with_passkey(state, form)
            return None if problem is None else self.render(
                state, error=problem, keep_signed_in=form.get("keep_signed_in") == "yes")
        started = time.perf_counter()
        email = normalise_email(form.get("email", ""))[:MAX_FIELD]
        keep = form.get("keep_signed_in") == "yes"
        # Throttled per typed identifier (known or not: no enumeration) and per address.
        keys = (throttle.account_key("password", email),
                throttle.address_key("password", request.remote_addr))
        verdict = throttle.check(*keys)
        if not verdict.allowed:
            metrics.SIGN_IN_FAILURES.labels("locked" if verdict.locked else "throttled").inc()
            return throttle.too_many_attempts(
                self.render(state, email=email, error=throttled_message(verdict),
                            keep_signed_in=keep),
                0 if verdict.locked else verdict.wait_seconds)  # a lock ends by a reset only
        password = normalise_password(form.get("password", "")[:MAX_FIELD])
        idp = current_app.extensions["idp"]
        user = db.session.execute(db.select(User).filter_by(email=email)).scalar_one_or_none()
        # Verify even for unknown emails: same response, same time (no enumeration).
        valid = idp.passwords.verify(user.password_hash if user else None, password)
        if user is None or not valid or not user.is_active:
            # Not an email account: a legacy username of the portal, maybe (idp.legacy).
            typed = form.get("password", "")[:MAX_FIELD]  # old systems hashed it as typed
            legacy = check_legacy_password(state.client.portal, email, typed)
            if legacy.user is None:
                throttle.record_failure(*keys)
                metrics.SIGN_IN_FAILURES.labels("wrong_credentials").inc()
                audit.record("signin.failure", actor="anonymous", subject=email,
                             client=state.client, reason="wrong_credentials")
                pad_failed_attempt(state.client.portal, started)
                return self.render(state, email=email, error=legacy.message or WRONG_CREDENTIALS,
                                   keep_signed_in=keep)
            user = legacy.user
        elif idp.passwords.needs_rehash(user.password_hash):
            user.password_hash = idp.passwords.hash(password)
        # The address keeps its count: one good account must not clear an attacker's other
        # failures.
        throttle.record_success(keys[0], verdict=verdict)
        metrics.SIGN_INS.inc()
        audit.record("signin.password", actor=f"user:{user.sub}", subject=user.email,
                     client=state.client, commit=False)
        state.tx.user_id = user.id
        state.tx.authenticated_at = utcnow()
        state.tx.amr = ["pwd"]
        state.tx.keep_signed_in = keep
        rebind_transaction(state.tx)  # session fixation: in the authentication's own commit
        db.session.commit()
        return None
