"""People in the console: find a person, see their account, and help them.

Reading needs people.read; the help-desk actions (reset email, reset MFA, unlock, end
sessions) people.help; disable and enable people.manage; invite invitations.send. A
portal_admin sees only the people of its portal: anyone else answers 404. An action that
changes the account everywhere (disable, enable, reset MFA) is refused to a portal_admin
when the person also belongs to a portal outside theirs: one portal's staff must not lock
a person out of, or weaken their sign-in at, another organisation.

Every action is a POST with the session's CSRF token, answered 303 with a notice; the
work and its audit event are in `idp.admin.people`, shared with the API and the CLI.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import request
from sqlalchemy import func
from werkzeug.wrappers import Response

from idp import audit
from idp.admin.access import CONSOLE_PORTAL_SLUG
from idp.admin.console import bp
from idp.admin.console.pages import Forbidden, console_page, done, nav_item, render, require
from idp.admin.people import (
    PersonError,
    disable_person,
    enable_person,
    end_person_sessions,
    find_person,
    person_details,
    person_portal_ids,
    refusal,
    reset_person_mfa,
    search_people,
    send_reset_email,
    unlock_person,
)
from idp.admin.roles import (
    AUDIT_READ,
    INVITATIONS_SEND,
    PEOPLE_HELP,
    PEOPLE_MANAGE,
    PEOPLE_READ,
    Actor,
)
from idp.db import db
from idp.errors import NotFound
from idp.invitations import InvitationError, send_invitation
from idp.legacy.accounts import account_of_placeholder, is_placeholder
from idp.mfa.methods import KINDS
from idp.models import Portal, User
from idp.security.csrf import check_csrf

PER_PAGE = 25
RECENT_EVENTS = 20
MAX_QUERY = 200

nav_item("people_search", "People", PEOPLE_READ,
         "Find a person by email, name, legacy username or contact ID; send a reset "
         "email, reset MFA, unlock, end sessions.")


class PersonNotFound(NotFound):
    title = "No such person"


# -- pages --------------------------------------------------------------------------------


@bp.get("/people")
@console_page(PEOPLE_READ)
def people_search(actor: Actor) -> str:
    text = request.args.get("q", "")[:MAX_QUERY]
    statement = search_people(actor.portal_ids(PEOPLE_READ), text)
    total = db.session.scalar(
        db.select(func.count()).select_from(statement.order_by(None).subquery())) or 0
    pages = max(1, -(-total // PER_PAGE))
    page = min(_page_number(request.args.get("page")), pages)
    people = db.session.execute(
        statement.limit(PER_PAGE).offset((page - 1) * PER_PAGE)).scalars().all()
    return render("people/search", actor, q=text, people=people, total=total, page=page,
                  pages=pages, is_placeholder=is_placeholder)


@bp.get("/people/<int:user_id>")
@console_page(PEOPLE_READ)
def people_show(actor: Actor, user_id: int) -> str:
    return _person_page(actor, _person(actor, user_id))


def _person_page(actor: Actor, user: User, error: str | None = None,
                 form: dict[str, str] | None = None) -> str:
    scope = actor.portal_ids(PEOPLE_READ)
    details = person_details(user, scope)
    belongs = person_portal_ids(user)
    # The person's own events, as far as the audit log is open to `actor` (a portal_admin:
    # those of its portal).
    events = list(db.session.execute(
        audit.select_events(audit.EventFilter(subject=user.email), actor.portal_ids(AUDIT_READ))
        .limit(RECENT_EVENTS)).scalars()) if actor.can(AUDIT_READ) else []
    return render(
        "people/show", actor, person=user, details=details, events=events, error=error,
        who=_display_name(user), method_kinds={k: kind.label for k, kind in KINDS.items()},
        form=form or {},
        can_help=actor.can_any(PEOPLE_HELP, belongs),
        can_manage=refusal(actor, PEOPLE_MANAGE, user, everywhere=True) is None
        and actor.user_id != user.id,
        mfa_refusal=refusal(actor, PEOPLE_HELP, user, everywhere=True),
        reset_portals=_portals_for(actor, PEOPLE_HELP, belongs),
        invite_portals=_portals_for(actor, INVITATIONS_SEND, None),
        may_pick_no_portal=actor.is_global(PEOPLE_HELP),
    )


# -- actions ------------------------------------------------------------------------------


@bp.post("/people/<int:user_id>/reset-email")
@console_page(PEOPLE_READ)
def people_send_reset(actor: Actor, user_id: int) -> Response | tuple[str, int]:
    def act(user: User, portal: Portal | None) -> str:
        chosen = _chosen_portal(actor, PEOPLE_HELP, user, request.form.get("portal", ""))
        send_reset_email(user, chosen, actor.label)
        return f"A reset email is on its way to {user.email}."

    return _act(actor, user_id, PEOPLE_HELP, act)


@bp.post("/people/<int:user_id>/reset-mfa")
@console_page(PEOPLE_READ)
def people_reset_mfa(actor: Actor, user_id: int) -> Response | tuple[str, int]:
    def act(user: User, portal: Portal | None) -> str:
        reset_person_mfa(user, request.form.get("reason", ""), actor.label, portal)
        return (f"Two-step verification of {_display_name(user)} was reset: they set it up "
                "again at their next sign-in.")

    return _act(actor, user_id, PEOPLE_HELP, act, everywhere=True)


@bp.post("/people/<int:user_id>/unlock")
@console_page(PEOPLE_READ)
def people_unlock(actor: Actor, user_id: int) -> Response | tuple[str, int]:
    def act(user: User, portal: Portal | None) -> str:
        unlock_person(user, actor.label, portal)
        return f"{_display_name(user)} may try to sign in again now."

    return _act(actor, user_id, PEOPLE_HELP, act)


@bp.post("/people/<int:user_id>/end-sessions")
@console_page(PEOPLE_READ)
def people_end_sessions(actor: Actor, user_id: int) -> Response | tuple[str, int]:
    def act(user: User, portal: Portal | None) -> str:
        ended = end_person_sessions(user, actor.label, portal)
        sessions = "session" if ended == 1 else "sessions"
        return f"{_display_name(user)} was signed out of {ended} {sessions}."

    return _act(actor, user_id, PEOPLE_HELP, act)


@bp.post("/people/<int:user_id>/disable")
@console_page(PEOPLE_READ)
def people_disable(actor: Actor, user_id: int) -> Response | tuple[str, int]:
    def act(user: User, portal: Portal | None) -> str:
        if user.id == actor.user_id:
            raise PersonError("status: you cannot disable your own account")
        disable_person(user, actor.label, portal)
        return f"The account of {_display_name(user)} is disabled and signed out everywhere."

    return _act(actor, user_id, PEOPLE_MANAGE, act, everywhere=True)


@bp.post("/people/<int:user_id>/enable")
@console_page(PEOPLE_READ)
def people_enable(actor: Actor, user_id: int) -> Response | tuple[str, int]:
    def act(user: User, portal: Portal | None) -> str:
        enable_person(user, actor.label, portal)
        return f"The account of {_display_name(user)} may sign in again."

    return _act(actor, user_id, PEOPLE_MANAGE, act, everywhere=True)


@bp.post("/people/<int:user_id>/invite")
@console_page(PEOPLE_READ)
def people_invite(actor: Actor, user_id: int) -> Response | tuple[str, int]:
    def act(user: User, portal: Portal | None) -> str:
        target = _portal_by_id(request.form.get("portal", ""))
        if target is None or target.slug == CONSOLE_PORTAL_SLUG:
            raise PersonError("portal: choose the portal to invite them to")
        require(actor, INVITATIONS_SEND, target.id)
        if is_placeholder(user):
            raise PersonError("email: this legacy username has no email address yet")
        try:
            invitation = send_invitation(target, user.email, user.name, actor=actor.label)
        except InvitationError as exc:
            raise PersonError(str(exc)) from None
        return f"An invitation to {target.name} is on its way to {invitation.email}."

    # Inviting is invitations.send at the chosen portal, checked inside.
    return _act(actor, user_id, PEOPLE_READ, act)


# -- helpers ------------------------------------------------------------------------------


def _act(actor: Actor, user_id: int, permission: str,
         action: Callable[[User, Portal | None], str],
         everywhere: bool = False) -> Response | tuple[str, int]:
    """CSRF, the person (404 outside one's portals), the permission, then the action:
    303 back to the person with a notice, or their page again with the error (400)."""
    check_csrf()
    user = _person(actor, user_id)
    why = refusal(actor, permission, user, everywhere)
    if why is not None:
        raise Forbidden(why)
    try:
        notice = action(user, _acting_portal(actor, permission, person_portal_ids(user)))
    except PersonError as exc:
        db.session.rollback()
        return _person_page(actor, user, error=str(exc), form=request.form.to_dict()), 400
    return done("console.people_show", notice, user_id=user.id)


def _display_name(user: User) -> str:
    """The email, or for a legacy username not yet moved to one, that username."""
    if is_placeholder(user):
        account = account_of_placeholder(user)
        username = account.legacy_username if account else user.email.split(":", 2)[-1]
        return f"{username} (legacy username)"
    return user.email


def _person(actor: Actor, user_id: int) -> User:
    user = find_person(user_id, actor.portal_ids(PEOPLE_READ))
    if user is None:
        raise PersonNotFound("There is no such person, or not one you can see.")
    return user


def _acting_portal(actor: Actor, permission: str, belongs: set[int]) -> Portal | None:
    """The portal a portal_admin acted for (on the audit event); None for global staff."""
    allowed = actor.portal_ids(permission)
    if allowed is None:
        return None
    mine = sorted(allowed & belongs)
    return db.session.get(Portal, mine[0]) if mine else None


def _portals_for(actor: Actor, permission: str, belongs: set[int] | None) -> list[Portal]:
    """Portals to offer in a form: those `actor` may act on (and the person belongs to)."""
    statement = db.select(Portal).where(Portal.slug != CONSOLE_PORTAL_SLUG)
    allowed = actor.portal_ids(permission)
    if allowed is not None:
        statement = statement.where(Portal.id.in_(sorted(allowed)))
    if belongs is not None:
        statement = statement.where(Portal.id.in_(sorted(belongs)))
    return list(db.session.execute(statement.order_by(Portal.name)).scalars())


def _portal_by_id(value: str) -> Portal | None:
    try:
        number = int(value)
    except ValueError:
        return None
    return db.session.get(Portal, number) if 0 < number < 2**63 else None


def _chosen_portal(actor: Actor, permission: str, user: User, value: str) -> Portal | None:
    """The portal picked for a reset email: one of the person's that `actor` may act on.

    Global staff may pick none (the link then lands on the IdP's own pages).
    """
    if not value:
        if actor.is_global(permission):
            return None
        raise PersonError("portal: choose the portal the email is for")
    portal = _portal_by_id(value)
    offered = {p.id for p in _portals_for(actor, permission, person_portal_ids(user))}
    if portal is None or portal.id not in offered:
        raise PersonError("portal: choose one of the person's portals")
    return portal


def _page_number(value: str | None) -> int:
    try:
        number = int(value or "1")
    except ValueError:
        return 1
    return min(max(number, 1), 100_000)
