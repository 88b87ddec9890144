"""Sign in with a passkey instead of email and password, on the `password` step's page.

The page carries options for a discoverable-credential request: the browser offers the
person's passkeys in the Email field's autofill (conditional mediation, `autocomplete=
"username webauthn"`) and behind a "Sign in with a passkey" button (static/webauthn.js).
The answer comes back in the same form's hidden `credential` field. User verification is
required, so the passkey alone is two factors: `amr` is hwk/swk and "mfa", and `acr`
phishing-resistant. Offered where the portal accepts passkeys (`mfa_methods`).
"""

from __future__ import annotations

from typing import Any

from idp import audit
from idp.login.transaction import LoginState
from idp.mfa import passkeys
from idp.mfa.completion import record_passkey_sign_in
from idp.mfa.methods import MfaError, kind_available


def offered(state: LoginState) -> bool:
    """Passkeys can sign in at this portal (and on this server's issuer)."""
    return "webauthn" in state.client.policy.mfa_methods and kind_available("webauthn")


def page_context(state: LoginState) -> dict[str, Any]:
    """What the sign-in page needs for passkeys: request options, or nothing."""
    if not offered(state):
        return {}
    options = passkeys.authentication_options(
        passkeys.SIGN_IN, passkeys.Binding(login_transaction_id=state.tx.id))
    return {"passkey_options": passkeys.options_attribute(options)}


def sign_in_with_passkey(state: LoginState, form: Any) -> str | None:
    """Verify the passkey and record the sign-in; None, or the message for the person."""
    if not offered(state):
        return passkeys.DIDNT_WORK
    try:
        used = passkeys.verify_assertion(
            form.get("credential", ""), passkeys.SIGN_IN,
            passkeys.Binding(login_transaction_id=state.tx.id))
    except MfaError as exc:
        return str(exc)
    user = used.method.user
    audit.record("signin.passkey", actor=f"user:{user.sub}", subject=user.email,
                 client=state.client, commit=False, amr=used.amr)
    record_passkey_sign_in(state, user, used.amr, keep=form.get("keep_signed_in") == "yes")
    return None
