"""/password/<token>: choose a password from a reset or invitation link."""

from __future__ import annotations

from flask import current_app, render_template, request
from werkzeug.wrappers import Response

from idp import audit
from idp.account import bp
from idp.account.completion import done_page, set_new_password, sign_in_after_link
from idp.account.links import find_link, mark_opened, redeem_link
from idp.db import db
from idp.models import ActionLink, User
from idp.policy import LoginPolicy
from idp.security.csrf import check_csrf
from idp.security.password_policy import normalise_password, password_problems

SET_PASSWORD_PURPOSES = ("reset", "invitation")


def _policy(link: ActionLink) -> LoginPolicy:
    return link.portal.policy if link.portal is not None else LoginPolicy()


def link_problem_page(link: ActionLink | None) -> tuple[str, int]:
    """A clear page for a link that cannot be used, with the way to ask for a new one."""
    state = link.state if link is not None else "unknown"
    return render_template("account/link_problem.html", state=state, client=None,
                           portal=link.portal if link else None), 410 if link else 404


def _owner(link: ActionLink) -> User | None:
    """The person the link is for, when they have an account already."""
    return link.user or db.session.execute(
        db.select(User).filter_by(email=link.email)
    ).scalar_one_or_none()


# `path:` so that a mangled link (a trailing "/", a split token) still gets the clear
# link page rather than a bare 404.
@bp.route("/password/<path:token>", methods=["GET", "POST"])
def set_password(token: str) -> Response | str | tuple[str, int]:
    link = find_link(token, SET_PASSWORD_PURPOSES)
    if link is None or link.state != "usable":
        return link_problem_page(link)
    owner = _owner(link)
    if owner is not None and not owner.is_active:
        # A disabled account gets no new email; a link sent before it was disabled is void.
        return link_problem_page(None)
    policy = _policy(link)
    portal_name = link.portal.name if link.portal else None
    if request.method == "GET":
        mark_opened(link)
        return render_template("account/set_password.html", link=link, policy=policy,
                               portal=link.portal, client=None, problems=[])
    check_csrf()
    password = normalise_password(request.form.get("password", "")[:1024])
    problems = password_problems(password, policy, link.email, portal_name)
    if problems:
        return render_template("account/set_password.html", link=link, policy=policy,
                               portal=link.portal, client=None, problems=problems)
    if not redeem_link(link):  # used by a concurrent request a moment ago
        db.session.rollback()
        return link_problem_page(link)
    user = owner
    if user is None:
        user = User(email=link.email, name=link.data.get("name"))
        db.session.add(user)
        db.session.flush()
    user.email_verified = True  # the link reached this mailbox
    if link.purpose == "reset":
        audit.record("password.reset_completed", actor=f"user:{user.sub}", subject=user.email,
                     commit=False, portal=link.portal.slug if link.portal else None)
    set_new_password(user, current_app.extensions["idp"].passwords.hash(password))
    return sign_in_after_link(link, user, policy)


@bp.get("/password/done")
def done() -> str:
    return done_page()
