"""Password not working? /reset: the same answer for every email, a single-use link by mail.

A portal can link to /reset directly; from the sign-in page the link carries the login
transaction (`?tx=`), so that after the new password the person lands back at the portal.
"""

from __future__ import annotations

import time
from typing import Any

from flask import render_template, request
from werkzeug.wrappers import Response

from idp import audit
from idp.account import bp
from idp.account.context import portal_named, sign_in_context
from idp.account.links import issue_link, link_url
from idp.db import db
from idp.legacy.accounts import accepts_legacy_usernames, is_placeholder
from idp.legacy.reset import send_legacy_reset
from idp.models import Portal, User
from idp.models.user import normalise_email
from idp.notify.outbox import queue_email, render_email
from idp.policy import LoginPolicy
from idp.security.csrf import check_csrf
from idp.security.timing import answer_no_sooner

MAX_EMAIL = 320




def lifetime_text(days: int) -> str:
    return "1 day" if days == 1 else f"{days} days"


def send_reset_email(user: User, portal: Portal | None,
                     return_params: dict[str, Any] | None = None) -> None:
    """Queue a reset link for `user` (self-service and staff "send reset email")."""
    policy = portal.policy if portal is not None else LoginPolicy()
    _, token = issue_link("reset", user.email, policy.reset_link_days, user=user,
                          portal=portal, return_params=return_params)
    queue_email(user.email, "reset_password", name=user.name,
                portal_name=portal.name if portal else None,
                link=link_url("account.set_password", token),
                lifetime=lifetime_text(policy.reset_link_days))


@bp.route("/reset", methods=["GET", "POST"])
def reset() -> Response | str:
    tx_id = request.values.get("tx")
    client, return_params = sign_in_context(tx_id)
    # From a sign-in the client's portal applies; a portal linking here directly names
    # itself, so that the link's lifetime and the landing page after it are the portal's.
    portal = client.portal if client is not None else portal_named(request.values.get("portal"))
    # Portals with legacy accounts also take a legacy username here (issue 4).
    legacy = accepts_legacy_usernames(portal)
    if request.method == "GET":
        return render_template("account/reset.html", client=client, portal=portal,
                               tx_id=tx_id, email=request.args.get("email", "")[:MAX_EMAIL],
                               legacy_usernames=legacy)
    check_csrf()
    started = time.perf_counter()
    email = normalise_email(request.form.get("email", ""))[:MAX_EMAIL]
    user = db.session.execute(db.select(User).filter_by(email=email)).scalar_one_or_none()
    if user is not None and user.is_active and not is_placeholder(user):
        send_reset_email(user, portal, return_params)
        outcome = "sent"
    elif legacy and send_legacy_reset(portal, email, return_params):
        # A legacy username or the email on file: the link goes to the email on file.
        outcome = "sent_legacy"
    else:
        # Same work, same answer for an unknown email: nothing here tells them apart.
        render_email("reset_password", name=None, portal_name=None, link="", lifetime="")
        outcome = "no_account"
    # Staff read the outcome in the audit log; the person's page never shows it.
    audit.record("password.reset_requested", actor="anonymous", subject=email, commit=False,
                 portal=portal.slug if portal else None,
                 client_id=client.client_id if client else None, outcome=outcome)
    db.session.commit()
    # A known email queues a link and an email: the same time for every answer, too.
    answer_no_sooner(started)
    return render_template("account/reset_sent.html", client=client, portal=portal,
                           tx_id=tx_id, email=email)
