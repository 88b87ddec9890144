"""Console sign-in: an authorization-code flow with PKCE against this IdP itself.

/admin/sign-in sends staff to /authorize as the built-in "idp-admin-console" client with
`acr_values=urn:portal-idp:acr:mfa`; /admin/callback checks `state`, redeems the code in
process (single use, PKCE verified, like the token endpoint would) and remembers the
sign-in only when its `acr` is an MFA level and the person holds an admin role.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlencode

from flask import redirect, request, session, url_for
from werkzeug.wrappers import Response

from idp import audit
from idp.admin.access import (
    CONSOLE_CLIENT_ID,
    MFA_ACRS,
    ConsoleSignIn,
    console_actor,
    console_redirect_uri,
    ensure_console_client,
    forget_console_sign_in,
    grants_of,
    remember_console_sign_in,
)
from idp.admin.console import bp
from idp.admin.console.pages import Forbidden, console_page, render, safe_next
from idp.admin.roles import Actor
from idp.clock import utcnow
from idp.db import db
from idp.errors import PageError
from idp.login.sessions import current_session, end_idp_session
from idp.login.transaction import ACR_MFA
from idp.models import AuthorizationCode
from idp.oidc import tokens
from idp.security.csrf import check_csrf
from idp.security.secrets import generate_secret, hash_secret

FLOW_KEY = "admin_flow"


class SignInFailed(PageError):
    title = "Sign-in to the console failed"


@bp.get("/sign-in")
def sign_in() -> Response:
    if console_actor() is not None:
        return redirect(safe_next(request.args.get("next")), 303)
    ensure_console_client()
    verifier, state = generate_secret(48), generate_secret(16)
    session[FLOW_KEY] = {"state": state, "verifier": verifier,
                         "next": safe_next(request.args.get("next"))}
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode({
        "client_id": CONSOLE_CLIENT_ID, "response_type": "code", "scope": "openid",
        "redirect_uri": console_redirect_uri(), "state": state, "acr_values": ACR_MFA,
        "code_challenge": challenge, "code_challenge_method": "S256",
    })
    return redirect(f"{url_for('oidc.authorize')}?{query}", 303)


@bp.get("/callback")
def callback() -> Response:
    flow = session.pop(FLOW_KEY, None)
    sent_state = request.args.get("state", "")
    if not isinstance(flow, dict) or not hmac.compare_digest(sent_state, flow.get("state", "")):
        raise SignInFailed("This sign-in link has expired. Open the console and sign in again.")
    if "error" in request.args:
        raise SignInFailed("You did not finish signing in. Open the console and try again.")
    row = _redeem(request.args.get("code", ""), flow["verifier"])
    record = current_session()
    if record is None or record.id != row.session_id or record.user_id != row.user_id:
        raise SignInFailed("Your session ended while signing in. Please sign in again.")
    if row.acr not in MFA_ACRS:
        raise SignInFailed("The console needs a sign-in with a second factor.")
    user = record.user
    if not grants_of(user):
        audit.record("admin.signin_refused", actor=f"user:{user.sub}", subject=user.email)
        raise Forbidden("Your account has no access to the admin console. "
                        "Ask an administrator if you need it.")
    remember_console_sign_in(ConsoleSignIn(user.id, record.id, row.acr or ""))
    audit.record("admin.signin", actor=f"admin:{user.email}", subject=user.email,
                 acr=row.acr)
    return redirect(flow.get("next") or url_for("console.home"), 303)


def _redeem(code: str, verifier: str) -> AuthorizationCode:
    """The console's code, used once, within its lifetime, for this PKCE verifier."""
    row = db.session.execute(db.select(AuthorizationCode).filter_by(
        code_hash=hash_secret(code), client_id=CONSOLE_CLIENT_ID)).scalar_one_or_none()
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    if (row is None or utcnow() >= row.expires_at
            or row.redirect_uri != console_redirect_uri()
            or not hmac.compare_digest(row.code_challenge or "", challenge)
            or not tokens.claim_authorization_code(row)):
        raise SignInFailed("This sign-in link has expired. Open the console and sign in again.")
    db.session.commit()
    return row


@bp.post("/sign-out")
def sign_out() -> Response:
    """End the console and the IdP session behind it (staff often share computers)."""
    check_csrf()
    actor = console_actor()
    forget_console_sign_in()
    record = current_session()
    if record is not None:
        end_idp_session(record)
        db.session.commit()
    if actor is not None:
        audit.record("admin.signout", actor=actor.label, subject=actor.label.split(":", 1)[1])
    return redirect(url_for("console.signed_out"), 303)


@bp.get("/signed-out")
def signed_out() -> str:
    return render("signed_out", actor=Actor("", ()))


@bp.get("/")
@console_page()
def home(actor: Actor) -> str:
    return render("home", actor)
