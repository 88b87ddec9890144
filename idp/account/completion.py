"""What happens after a person sets a password from a link: shared by reset and invitations.

Purpose-specific follow-ups (an invitation becomes "accepted", a contact gets its user)
register themselves in `AFTER_PASSWORD_SET`, so this module knows none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from flask import redirect, render_template, url_for
from werkzeug.wrappers import Response

from idp import audit
from idp.account.links import void_links_of
from idp.clock import utcnow
from idp.db import db
from idp.login.sessions import end_sessions_of, establish_session
from idp.login.transaction import acr_for, renew_browser_id
from idp.mfa.trusted import revoke_trusted_devices
from idp.models import ActionLink, User
from idp.oidc import tokens
from idp.policy import LoginPolicy
from idp.security import throttle

AFTER_PASSWORD_SET: dict[str, Callable[[ActionLink, User], None]] = {}


def set_new_password(user: User, password_hash: str) -> None:
    """Store the new hash; every other session and outstanding link of the person ends."""
    user.password_hash = password_hash
    user.password_changed_at = utcnow()
    void_links_of(user)
    end_sessions_of(user)
    # After a reset (often a compromise) even offline_access tokens must not survive,
    # nor the trust of browsers that skip MFA (whoever knew the password may have one).
    tokens.revoke_user_tokens(user.id)
    revoke_trusted_devices(user)
    throttle.record_success(throttle.account_key("password", user.email))
    audit.record("password.changed", actor=f"user:{user.sub}", subject=user.email, commit=False)
    db.session.commit()


def sign_in_after_link(link: ActionLink, user: User, policy: LoginPolicy) -> Response | str:
    """Sign the person in on this browser and take them back to where they came from."""
    follow_up = AFTER_PASSWORD_SET.get(link.purpose)
    if follow_up is not None:
        follow_up(link, user)
    amr = ["pwd"]
    renew_browser_id()  # session fixation: a copy of this browser's old cookie gains nothing
    establish_session(user, amr, acr_for(amr), utcnow(), policy)
    db.session.commit()
    if link.return_params:
        # Resume the sign-in the person started: /authorize validates it all again and
        # answers from the new session (a `prompt=login` was satisfied just now).
        params = {k: v for k, v in link.return_params.items() if k != "prompt" and v}
        return redirect(url_for("oidc.authorize") + "?" + urlencode(params), 303)
    if link.portal is not None and link.portal.home_url:
        return redirect(link.portal.home_url, 303)
    return redirect(url_for("account.done"), 303)


def done_page() -> str:
    return render_template("account/password_set.html", client=None)
