"""New user? /register: the email is proven first, then matched to the portal's contacts.

Available where the portal's login policy has `self_registration` `match_only` or
`create`; the portal is the one of this browser's sign-in (`?tx=`) or named by a direct
link (`?portal=SLUG`).

1. The form takes "Email" and "Name" and always answers with the same "check your email"
   page, so nobody learns which emails have accounts: a new email gets a single-use
   "register" link, an email that has an account gets "you already have an account".
2. The link page (`/register/<token>`) is reached only from that mailbox: it matches the
   portal's contacts by email (`idp.contacts.match_contact`). No match: under `create` a
   contact is made, under `match_only` the portal's `not_found_message` is shown and no
   account is made. Opening the page changes nothing (mail scanners open links too).
3. The person chooses a password on the set-password page (the same template, and the
   helpers of `completion`); only then are the account and its contact link saved, the
   email marked verified, and the person signed in and sent back to the sign-in they
   started (the authorization request saved on the link).

Register links are not accepted at /password/<token>: that page would skip the contact
check. Their lifetime is the policy's `reset_link_days` (default 1 day): like a reset,
the person asked for the link a moment ago; `set_password_link_days` (7) is for links
staff send to people who are not expecting them.
"""

from __future__ import annotations

import time
from typing import Any

from flask import current_app, render_template, request, url_for
from werkzeug.wrappers import Response

from idp.account import bp
from idp.account.completion import set_new_password, sign_in_after_link
from idp.account.context import portal_named, sign_in_context
from idp.account.links import find_link, issue_link, link_url, mark_opened, redeem_link
from idp.contacts import create_contact_for, link_contact, match_contact
from idp.db import db
from idp.models import ActionLink, Client, Contact, Portal, User
from idp.models.user import normalise_email
from idp.notify.outbox import queue_email, render_email
from idp.security.csrf import check_csrf
from idp.security.password_policy import normalise_password, password_problems
from idp.security.timing import answer_no_sooner
from idp.users import EMAIL_PATTERN

MAX_EMAIL = 320
MAX_NAME = 200
PURPOSE = "register"




def registration_open(portal: Portal | None) -> bool:
    """True when `portal` lets people create their own accounts."""
    return portal is not None and portal.policy.self_registration != "off"


def _unavailable(client: Client | None, portal: Portal | None) -> tuple[str, int]:
    return render_template("account/register_unavailable.html", client=client,
                           portal=portal), 404


def _lifetime_text(days: int) -> str:
    return "1 day" if days == 1 else f"{days} days"


@bp.route("/register", methods=["GET", "POST"])
def register() -> Response | str | tuple[str, int]:
    tx_id = request.values.get("tx") or None
    client, return_params = sign_in_context(tx_id)
    if client is None:
        tx_id = None
    portal = client.portal if client is not None else portal_named(request.values.get("portal"))
    if portal is None or not registration_open(portal):
        return _unavailable(client, portal)
    context = {"client": client, "portal": portal, "tx_id": tx_id}
    if request.method == "GET":
        return render_template("account/register.html", email="", name="", errors={}, **context)
    check_csrf()
    email = normalise_email(request.form.get("email", ""))[:MAX_EMAIL]
    name = " ".join(request.form.get("name", "").split())[:MAX_NAME]
    errors = {}
    if not EMAIL_PATTERN.match(email):
        errors["email"] = "Enter your email address, like name@example.org."
    if not name:
        errors["name"] = "Enter your name."
    if errors:
        return render_template("account/register.html", email=email, name=name,
                               errors=errors, **context)
    started = time.perf_counter()
    send_registration_email(email, name, portal, return_params)
    db.session.commit()
    # A new email gets a link, a known one a note: the same time for every answer, too.
    answer_no_sooner(started)
    return render_template("account/register_sent.html", email=email, **context)


def send_registration_email(email: str, name: str, portal: Portal,
                            return_params: dict[str, Any] | None) -> None:
    """Queue the link that proves `email`, or, when it has an account, say so instead."""
    user = db.session.execute(db.select(User).filter_by(email=email)).scalar_one_or_none()
    if user is not None:
        context = _account_exists_context(user, portal)
        if user.is_active:
            queue_email(email, "account_exists", **context)
        else:
            # A disabled account is told nothing; the same work keeps the same timing.
            render_email("account_exists", **context)
        return
    days = portal.policy.reset_link_days
    _, token = issue_link(PURPOSE, email, days, portal=portal, return_params=return_params,
                          data={"name": name})
    queue_email(email, "register", name=name, portal_name=portal.name,
                link=link_url("account.register_link", token), lifetime=_lifetime_text(days))


def _account_exists_context(user: User, portal: Portal) -> dict[str, Any]:
    issuer = current_app.extensions["idp"].settings.server.issuer
    return {
        "name": user.name,
        "email": user.email,
        "portal_name": portal.name,
        "sign_in_url": portal.home_url,
        "reset_url": issuer + url_for("account.reset", portal=portal.slug),
    }


# -- the link ---------------------------------------------------------------------------------


def register_link_problem(link: ActionLink | None) -> tuple[str, int]:
    """A clear page for a used, expired or superseded link, with a way to start again."""
    state = link.state if link is not None else "unknown"
    portal = link.portal if link is not None else None
    return render_template("account/register_link_problem.html", state=state, client=None,
                           portal=portal), 410 if link else 404


# `path:` so that a mangled link (a trailing "/", a split token) gets the clear page.
@bp.route("/register/<path:token>", methods=["GET", "POST"])
def register_link(token: str) -> Response | str | tuple[str, int]:
    link = find_link(token, (PURPOSE,))
    if link is None or link.state != "usable" or link.portal is None:
        return register_link_problem(link)
    portal = link.portal
    policy = portal.policy
    if not registration_open(portal):
        return _unavailable(None, portal)
    owner = db.session.execute(
        db.select(User).filter_by(email=link.email)
    ).scalar_one_or_none()
    if owner is not None:
        # An account was made for this email since the link was sent (an invitation, or
        # another registration): sign in with it; this link changes nothing.
        return render_template("account/register_account_exists.html", client=None,
                               portal=portal, **_account_exists_context(owner, portal))
    name = link.data.get("name")
    contact = match_contact(portal, link.email, name)
    if contact is None and policy.self_registration == "match_only":
        return render_template("account/register_not_found.html", client=None, portal=portal,
                               message=policy.not_found_message)
    page = {"link": link, "policy": policy, "portal": portal, "client": None}
    if request.method == "GET":
        mark_opened(link)
        return render_template("account/set_password.html", problems=[], **page)
    check_csrf()
    password = normalise_password(request.form.get("password", "")[:1024])
    problems = password_problems(password, policy, link.email, portal.name)
    if problems:
        return render_template("account/set_password.html", problems=problems, **page)
    if not redeem_link(link):  # used by a concurrent request a moment ago
        db.session.rollback()
        return register_link_problem(link)
    user = create_registered_user(link, portal, contact)
    set_new_password(user, current_app.extensions["idp"].passwords.hash(password))
    return sign_in_after_link(link, user, policy)


def create_registered_user(link: ActionLink, portal: Portal, contact: Contact | None) -> User:
    """The new account, its email verified by the link, linked to its (new) contact."""
    user = User(email=link.email, name=link.data.get("name"), email_verified=True)
    db.session.add(user)
    db.session.flush()
    if contact is not None:
        link_contact(contact, user)
    else:
        create_contact_for(portal, user)
    return user
