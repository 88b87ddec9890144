"""The `mfa_challenge` step: ask for a second factor when MFA is required and not yet done.

Required by the portal's policy (from its `mfa_required_from` date) or by the client's
`acr_values`; not asked again in a sign-in (or a session) that already passed MFA, nor on
a browser the person trusts. A session signed in with a password only is stepped up here
without asking for the password again. "Try another method" lists every method the person
has at this portal, and a recovery code.
"""

from __future__ import annotations

from typing import Any

from authlib.oidc.core.errors import InteractionRequiredError
from flask import request
from werkzeug.wrappers import Response

from idp import audit
from idp.legacy.accounts import is_placeholder
from idp.login.steps.base import Step
from idp.login.transaction import LoginState
from idp.mfa import codes, passkeys, totp
from idp.mfa.completion import apply_trust_choice, brand_name, record_second_factor, trust_periods
from idp.mfa.methods import (
    KINDS,
    MfaError,
    allowed_methods,
    find_method,
    method_label,
    preferred_method,
    retry_after,
    throttle_wait,
)
from idp.mfa.recovery import recovery_verdict, use_recovery_code
from idp.mfa.requirement import mfa_done, mfa_required, passkey_wanted
from idp.mfa.trusted import browser_is_trusted
from idp.models import MfaMethod, User
from idp.security import throttle

MAX_FIELD = 100
RECOVERY = "recovery"


def _user(state: LoginState) -> User:
    user = state.user
    assert user is not None  # is_needed is False without one
    return user


def _methods(state: LoginState, user: User) -> list[MfaMethod]:
    """The methods that answer this sign-in: only passkeys when one is wanted."""
    methods = allowed_methods(user, state.client.policy)
    if passkey_wanted(state):
        return [m for m in methods if m.kind == "webauthn"]
    return methods


def _failed(state: LoginState, user: User, kind: str, reason: str = "wrong_code") -> None:
    audit.record("mfa.failed", actor=f"user:{user.sub}", subject=user.email,
                 client=state.client, method_kind=kind, reason=reason)


def _binding(state: LoginState) -> passkeys.Binding:
    return passkeys.Binding(login_transaction_id=state.tx.id)


class MfaChallengeStep(Step):
    name = "mfa_challenge"
    authenticates = True
    prompt_none_error = InteractionRequiredError

    def is_needed(self, state: LoginState) -> bool:
        user = state.user
        if user is None or is_placeholder(user) or mfa_done(state) or not mfa_required(state):
            return False  # a legacy placeholder has no methods: see `mfa_enroll`
        if not allowed_methods(user, state.client.policy):
            return False  # nothing to ask for: `mfa_enroll` sets one up first
        # A trusted browser stands for a second factor, but not for a passkey.
        return not browser_is_trusted(user) or passkey_wanted(state)

    # -- pages ---------------------------------------------------------------------------

    def render(self, state: LoginState, **context: Any) -> str:
        user = _user(state)
        methods = _methods(state, user)
        context["recovery"] = not passkey_wanted(state)
        if request.args.get("choose") == "1" and "method" not in context:
            return self.template(state, mode="choose", methods=[
                (m, method_label(m), KINDS[m.kind].label if m.kind == "webauthn"
                 else codes.mask_destination(m)) for m in methods
            ], **context)
        selected = context.pop("method", None) or request.args.get("method")
        if selected == RECOVERY and context["recovery"]:
            return self._page(state, None, methods, **context)
        method = find_method(user, selected) if selected else None
        if method is None or method not in methods:
            method = preferred_method(methods)
        assert method is not None  # is_needed is False without one
        if method.kind in ("email", "sms") and request.method == "GET" \
                and codes.live_code(method) is None and not codes.resend_wait(method):
            # Opening the page (or choosing the method) sends the code; reloading does not.
            try:
                codes.send_code(method, brand_name(state))
            except MfaError as exc:
                context.setdefault("error", str(exc))
        return self._page(state, method, methods, **context)

    def _page(self, state: LoginState, method: MfaMethod | None, methods: list[MfaMethod],
              **context: Any) -> str:
        if method is not None and method.kind == "webauthn":
            # Any of the person's passkeys will do; the browser offers those it can use.
            context["options"] = passkeys.options_attribute(passkeys.authentication_options(
                passkeys.SECOND_FACTOR, _binding(state), _user(state)))
        destination = ""
        if method is not None and method.kind in ("email", "sms"):
            latest = codes.latest_code(method)
            # Only say "we sent a code" once one was (sending may have been refused).
            destination = codes.mask_destination(method, latest.destination) if latest else ""
        return self.template(
            state, mode="code", method=method, kind=method.kind if method else RECOVERY,
            method_ref=str(method.id) if method else RECOVERY, kinds=KINDS,
            destination=destination,
            resend_wait=codes.resend_wait(method) if method is not None else 0,
            periods=trust_periods(state.client.policy), **context,
        )

    # -- submissions ---------------------------------------------------------------------

    def submit(self, state: LoginState, form: Any) -> Response | str | None:
        user = _user(state)
        methods = _methods(state, user)
        entered = form.get("code", "")[:MAX_FIELD]
        if form.get("method") == RECOVERY and not passkey_wanted(state):
            verdict = recovery_verdict(user)
            if not verdict.allowed:
                return throttle.too_many_attempts(self._page(
                    state, None, methods, error=codes.CodeCheck.THROTTLED.value),
                    verdict.wait_seconds)
            if not use_recovery_code(user, entered):
                _failed(state, user, RECOVERY)
                return self._page(state, None, methods, error="That recovery code didn't "
                                  "work. Each code works only once.")
            self._passed(state, user, None, form)
            return None
        method = find_method(user, form.get("method"))
        if method is None or method not in methods:
            return self.render(state)
        if form.get("action") == "resend" and method.kind in ("email", "sms"):
            try:
                codes.send_code(method, brand_name(state))
            except MfaError as exc:
                return self._page(state, method, methods, error=str(exc))
            return self._page(state, method, methods, notice="We sent a new code.")
        if throttle_wait(method) is not None:
            return throttle.too_many_attempts(self._page(
                state, method, methods, error=codes.CodeCheck.THROTTLED.value),
                retry_after(method))
        if method.kind == "webauthn":
            try:
                used = passkeys.verify_assertion(form.get("credential", ""),
                                                 passkeys.SECOND_FACTOR, _binding(state), user)
            except MfaError as exc:
                _failed(state, user, "webauthn")
                return self._page(state, method, methods, error=str(exc))
            record_second_factor(state, "webauthn", used.amr)
            apply_trust_choice(user, form, state.client.policy)
            return None
        if method.kind == "totp":
            if not totp.verify_totp(method, entered):
                _failed(state, user, "totp")
                return self._page(state, method, methods, error="That code didn't work. Enter "
                                  "the newest 6-digit code your app shows for this account.")
        else:
            result, _ = codes.check_code(method, entered)
            if result is not codes.CodeCheck.OK:
                _failed(state, user, method.kind, result.name.lower())
                return self._page(state, method, methods, error=result.value)
        self._passed(state, user, method.kind, form)
        return None

    def _passed(self, state: LoginState, user: User, kind: str | None, form: Any) -> None:
        record_second_factor(state, kind)
        apply_trust_choice(user, form, state.client.policy)
