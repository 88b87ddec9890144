"""The `mfa_enroll` step: set up a second factor when it is required, or offered before the
portal's date (skippable `mfa_skips_allowed` times, counted per person).

Methods: "Authenticator app" (QR code and the secret as text), "Passkey or security key"
(WebAuthn, named by the person), "Email" and "Text message" (SMS only beside a stronger
method, with a notice of its risk). First-time setup may
correct the address or number the codes go to: the code itself proves it. Success passes
MFA for this sign-in, may trust the browser, and shows 10 recovery codes once.
"""

from __future__ import annotations

from typing import Any

from authlib.oidc.core.errors import InteractionRequiredError
from flask import request, url_for

from idp import audit
from idp.db import db
from idp.legacy.accounts import is_placeholder
from idp.login.steps.base import Step
from idp.login.transaction import LoginState
from idp.mfa import codes, passkeys, totp
from idp.mfa.completion import (
    apply_trust_choice,
    brand_name,
    record_second_factor,
    trust_periods,
)
from idp.mfa.methods import (
    KINDS,
    MfaError,
    allowed_methods,
    confirm_method,
    offered_kinds,
    pending_method,
)
from idp.mfa.recovery import generate_recovery_codes
from idp.mfa.requirement import (
    enrolment_mandatory,
    enrolment_offered,
    mfa_required,
    portal_requires_mfa,
    record_skip,
    skips_left,
)
from idp.models import MfaMethod, User
from idp.users import EMAIL_PATTERN

MAX_FIELD = 320
SMS_RISK = (
    "Text messages are the least safe choice: they can be read on a locked phone, or sent "
    "to someone else who has your number moved to their SIM card. Choose the authenticator "
    "app if you can."
)


def _user(state: LoginState) -> User:
    user = state.user
    assert user is not None  # is_needed is False without one
    return user


def _binding(state: LoginState) -> passkeys.Binding:
    """A passkey ceremony of this sign-in is bound to its transaction."""
    return passkeys.Binding(login_transaction_id=state.tx.id)


def _enrolled(state: LoginState, user: User, method: MfaMethod) -> None:
    """The same event as a method added on the account page, naming the sign-in's client."""
    audit.record("mfa.method_added", actor=f"user:{user.sub}", subject=user.email,
                 commit=False, client=state.client, method=method.id,
                 method_kind=method.kind)


class MfaEnrollStep(Step):
    name = "mfa_enroll"
    authenticates = True
    prompt_none_error = InteractionRequiredError

    def is_needed(self, state: LoginState) -> bool:
        if state.client.policy.mfa_required_from is None and not mfa_required(state):
            # Neither required nor offered here: no need to read the person's methods
            # (this runs on every sign-in page).
            return False
        user = state.user
        # A legacy placeholder (a username not yet moved to an email) has no address to
        # send codes to and is not a lasting account: MFA starts once it has migrated.
        if user is None or is_placeholder(user) or allowed_methods(user, state.client.policy):
            return False
        if enrolment_mandatory(state, user):
            return True
        return bool(offered_kinds(state.client.policy)) and enrolment_offered(state)

    # -- pages ---------------------------------------------------------------------------

    def render(self, state: LoginState, **context: Any) -> str:
        user = _user(state)
        kinds = offered_kinds(state.client.policy)
        kind = context.pop("kind", None) or request.args.get("method")
        if not kinds:
            return self._page(state, "unavailable", **context)
        if kind not in kinds:
            if len(kinds) > 1:
                return self._choose(state, user, kinds, **context)
            kind = kinds[0]
        if kind == "totp":
            return self._totp(state, user, **context)
        if kind == "webauthn":
            return self._passkey(state, user, **context)
        pending = pending_method(user, kind)
        changing = context.pop("change", False) or request.args.get("change") == "1"
        if pending is not None and codes.latest_code(pending) is not None and not changing:
            return self._code_form(state, pending, **context)
        return self._address_form(state, user, kind, pending, **context)

    def _page(self, state: LoginState, mode: str, **context: Any) -> str:
        return self.template(state, mode=mode, kinds=KINDS, **context)

    def _choose(self, state: LoginState, user: User, kinds: list[str], **context: Any) -> str:
        policy = state.client.policy
        mandatory = enrolment_mandatory(state, user)
        return self._page(
            state, "choose", offered=kinds, sms_risk=SMS_RISK, mandatory=mandatory,
            skips_left=skips_left(user, policy), required_from=policy.mfa_required_from,
            already_required=portal_requires_mfa(policy), **context,
        )

    def _totp(self, state: LoginState, user: User, **context: Any) -> str:
        method = totp.start_enrolment(user, restart=request.args.get("restart") == "1")
        secret = totp.secret_of(method)
        uri = totp.provisioning_uri(secret, user.email, brand_name(state))
        return self._page(
            state, "totp", method=method, secret=totp.grouped(secret), otpauth_uri=uri,
            qr_code=totp.qr_code_data_uri(uri), periods=trust_periods(state.client.policy),
            several=len(offered_kinds(state.client.policy)) > 1, **context,
        )

    def _passkey(self, state: LoginState, user: User, **context: Any) -> str:
        options = passkeys.registration_options(user, _binding(state))
        return self._page(
            state, "webauthn", options=passkeys.options_attribute(options),
            periods=trust_periods(state.client.policy),
            several=len(offered_kinds(state.client.policy)) > 1, **context,
        )

    def _address_form(self, state: LoginState, user: User, kind: str,
                      pending: MfaMethod | None, **context: Any) -> str:
        if "address" not in context:
            if pending is not None and pending.destination:
                context["address"] = pending.destination
            else:
                # A phone number is never shown in full (only the person types it in full).
                context["address"] = user.email if kind == "email" else ""
        on_file = codes.mask_phone(user.phone) if kind == "sms" and user.phone else None
        return self._page(state, "address", kind=kind, sms_risk=SMS_RISK, on_file=on_file,
                          several=len(offered_kinds(state.client.policy)) > 1, **context)

    def _code_form(self, state: LoginState, method: MfaMethod, **context: Any) -> str:
        latest = codes.latest_code(method)
        where = latest.destination if latest is not None else method.destination
        return self._page(
            state, "code", kind=method.kind, method=method,
            destination=codes.mask_destination(method, where),
            resend_wait=codes.resend_wait(method), periods=trust_periods(state.client.policy),
            several=len(offered_kinds(state.client.policy)) > 1, **context,
        )

    # -- submissions ---------------------------------------------------------------------

    def submit(self, state: LoginState, form: Any) -> str | None:
        user = _user(state)
        # A form sent without its button (some assistive tools) means its main action.
        action = form.get("action") or (
            "verify" if "code" in form else "send" if "address" in form else "")
        if action == "skip":
            if enrolment_mandatory(state, user):
                return self.render(state, error="Setting up two-step verification is required "
                                                "now and can no longer be skipped.")
            record_skip(state, user)
            return None
        kind = form.get("kind")
        if kind not in offered_kinds(state.client.policy):
            return self.render(state)
        if action == "choose":
            return self.render(state, kind=kind)
        if action == "send":
            return self._send(state, user, kind, form.get("address", "")[:MAX_FIELD])
        if action == "resend":
            pending = pending_method(user, kind)
            if pending is None:
                return self.render(state, kind=kind)
            try:
                codes.send_code(pending, brand_name(state))
            except MfaError as exc:
                return self._code_form(state, pending, error=str(exc))
            return self._code_form(state, pending, notice="We sent a new code.")
        if action == "verify":
            return self._verify(state, user, kind, form)
        return self.render(state, kind=kind)

    def _send(self, state: LoginState, user: User, kind: str, address: str) -> str:
        try:
            if kind == "sms":
                destination = codes.normalise_phone(address)
            else:
                destination = address.strip().lower()
                if not EMAIL_PATTERN.match(destination):
                    raise MfaError("Enter an email address, like name@example.com.")
        except MfaError as exc:
            return self._address_form(state, user, kind, None, address=address, error=str(exc))
        pending = pending_method(user, kind)
        if pending is None:
            pending = MfaMethod(user_id=user.id, kind=kind)
            db.session.add(pending)
        pending.destination = destination
        db.session.commit()
        try:
            codes.send_code(pending, brand_name(state), destination)
        except MfaError as exc:
            return self._address_form(state, user, kind, pending, address=address,
                                      error=str(exc))
        return self._code_form(state, pending)

    def _verify_passkey(self, state: LoginState, user: User, form: Any) -> str | None:
        label = form.get("label", "")[:MAX_FIELD]
        try:
            method = passkeys.register_credential(user, form.get("credential", ""), label,
                                                  _binding(state))
        except MfaError as exc:
            return self._passkey(state, user, error=str(exc), label=label)
        _enrolled(state, user, method)
        record_second_factor(state, "webauthn", passkeys.amr_of(method))
        apply_trust_choice(user, form, state.client.policy)
        recovery_codes = generate_recovery_codes(user)
        return self._page(state, "done", method_name="passkey", passkey=True,
                          recovery_codes=recovery_codes,
                          continue_url=url_for("login.interaction", tx_id=state.tx.id))

    def _verify(self, state: LoginState, user: User, kind: str, form: Any) -> str | None:
        if kind == "webauthn":
            return self._verify_passkey(state, user, form)
        code = form.get("code", "")[:MAX_FIELD]
        pending = pending_method(user, kind)
        if pending is None:
            return self.render(state, kind=kind)
        if kind == "totp":
            if not totp.verify_totp(pending, code):
                return self._totp(state, user, error="That code didn't work. Enter the "
                                  "newest 6-digit code your app shows for this account.")
        else:
            result, row = codes.check_code(pending, code)
            if result is not codes.CodeCheck.OK or row is None:
                return self._code_form(state, pending, error=result.value)
            # The code proves the address it was sent to (possibly just corrected).
            pending.destination = row.destination
            if kind == "sms" and not user.phone_verified:
                user.phone, user.phone_verified = row.destination, True
        confirm_method(pending)
        _enrolled(state, user, pending)
        db.session.commit()
        record_second_factor(state, kind)
        apply_trust_choice(user, form, state.client.policy)
        recovery_codes = generate_recovery_codes(user)
        return self._page(state, "done", method_name=KINDS[kind].label,
                          recovery_codes=recovery_codes,
                          continue_url=url_for("login.interaction", tx_id=state.tx.id))
