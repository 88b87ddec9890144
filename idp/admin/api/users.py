"""Users API: find people, see one, the help-desk actions, and a portal's legacy accounts.

The work and its audit events are idp.admin.people's (shared with the console and the
CLI); this module reads requests, scopes them, and shapes answers. A person is addressed
by `sub`. For a portal's client, people outside its portal do not exist (404, as for an
unknown `sub`), and an action that changes the account everywhere (disable, enable, reset
MFA) is refused (403) when the person also belongs to another portal, as in the console:
one portal's staff must not lock a person out of another organisation.

A person's answer never carries a secret: MFA methods are kinds and dates, sessions a
count; whether a password is set is a yes/no.
"""

from __future__ import annotations

from typing import Any

from idp import audit, invitations
from idp.admin import people
from idp.admin.api.contacts import (
    CSV_BODY,
    CSV_ERRORS,
    CSV_MEDIA_TYPE,
    SLUG,
    csv_rows,
    portal_in_scope,
    timestamp,
)
from idp.admin.api.invitations import INVITATION, serialize_invitation
from idp.admin.api.pagination import paginate
from idp.admin.api.problems import ApiProblem, from_domain_error
from idp.admin.api.registry import Param, operation
from idp.admin.api.schemas import (
    DATE_TIME,
    NULLABLE_DATE_TIME,
    NULLABLE_STRING,
    PAGE_PARAMS,
    errors_of,
    page_of,
)
from idp.admin.roles import (
    LEGACY_READ,
    LEGACY_WRITE,
    PEOPLE_HELP,
    PEOPLE_MANAGE,
    PEOPLE_READ,
    Actor,
)
from idp.db import db
from idp.legacy import importer
from idp.legacy.accounts import is_placeholder, legacy_status
from idp.models import Portal, User
from idp.models.user import normalise_email
from idp.users import UserError, create_user

TAG = "users"
SUB = {"type": "string", "minLength": 1, "maxLength": 64}
STRINGS = {"type": "array", "items": {"type": "string"}}
NO_CONTROLS = "^[^\\x00-\\x1f\\x7f]*$"  # one line of text: it goes into the audit log

USER: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["sub", "email", "name", "email_verified", "status", "created_at"],
    "properties": {
        "sub": {"type": "string"},
        "email": {"type": ["string", "null"],
                  "description": "null for a legacy username not yet moved to an email"},
        "name": NULLABLE_STRING,
        "email_verified": {"type": "boolean"},
        "status": {"type": "string", "enum": ["active", "disabled"]},
        "created_at": DATE_TIME,
    },
}

PERSON = {
    "type": "object",
    "additionalProperties": False,
    "required": [*USER["required"], "locked", "has_password", "password_changed_at",
                 "portals", "contacts", "mfa_methods", "sessions"],
    "properties": {
        **USER["properties"],
        "locked": {"type": "boolean",
                   "description": "Sign-in is being refused after failed attempts (unlock)"},
        "has_password": {"type": "boolean"},
        "password_changed_at": NULLABLE_DATE_TIME,
        "portals": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["slug", "name", "contact_ids", "legacy_usernames",
                         "invitation_status"],
            "properties": {
                "slug": {"type": "string"}, "name": {"type": "string"},
                "contact_ids": STRINGS, "legacy_usernames": STRINGS,
                "invitation_status": {"type": ["string", "null"],
                                      "enum": [*invitations.STATUSES, None]},
            },
        }},
        "contacts": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["portal", "contact_id", "preferred_username"],
            "properties": {"portal": {"type": "string"}, "contact_id": {"type": "string"},
                           "preferred_username": {"type": "string"}},
        }},
        "mfa_methods": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["kind", "created_at", "confirmed_at", "last_used_at"],
            "properties": {"kind": {"type": "string"}, "created_at": DATE_TIME,
                           "confirmed_at": NULLABLE_DATE_TIME,
                           "last_used_at": NULLABLE_DATE_TIME},
        }},
        "sessions": {"type": "integer", "minimum": 0,
                     "description": "How many sign-in sessions are live"},
    },
}

NEW_USER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["email", "portal"],
    "properties": {
        "email": {"type": "string", "format": "email", "minLength": 3,
                  "maxLength": invitations.MAX_EMAIL},
        "name": {"type": "string", "maxLength": invitations.MAX_NAME},
        "portal": {**SLUG, "description": "The portal the invitation is from"},
        "message": {"type": "string", "minLength": 1, "maxLength": invitations.MAX_MESSAGE,
                    "description": "Instead of the portal's invitation message"},
    },
}

CREATED = {
    "type": "object", "additionalProperties": False, "required": ["user", "invitation"],
    "properties": {"user": USER, "invitation": INVITATION},
}

REASON = {
    "type": "object", "additionalProperties": False, "required": ["reason"],
    "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500,
                              "pattern": NO_CONTROLS,
                              "description": "Why (a ticket number): for the audit log"}},
}

RESET = {
    "type": "object", "additionalProperties": False,
    "properties": {"portal": {**SLUG, "description": (
        "One of the person's portals: the email's branding, link lifetime and landing "
        "page. Required for a portal's client; an admin client may leave it out")}},
}

LEGACY_REPORT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["created", "updated", "unchanged", "already_migrated", "without_password",
                 "errors", "warnings"],
    "properties": {
        **{name: {"type": "integer", "minimum": 0} for name in (
            "created", "updated", "unchanged", "already_migrated", "without_password")},
        **{name: {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["row", "message"],
            "properties": {"row": {"type": "integer", "minimum": 2},
                           "message": {"type": "string"}}}} for name in ("errors", "warnings")},
    },
}

LEGACY_STATUS = {
    "type": "object",
    "additionalProperties": False,
    "required": ["portal", "usernames_retired", "total", "migrated", "linked", "pending",
                 "retired", "without_password"],
    "properties": {
        "portal": {"type": "string"},
        "usernames_retired": {"type": "boolean"},
        **{name: {"type": "integer", "minimum": 0} for name in (
            "total", "migrated", "linked", "pending", "retired", "without_password")},
    },
}

PERSON_PATH = {"sub": SUB}
PERSON_ERRORS = errors_of(401, 403, 404, 409)


# -- finding and reading -----------------------------------------------------------------


@operation(
    "GET", "/users",
    summary="Find people by email, name, legacy username or contact id, by email",
    tag=TAG, permission=PEOPLE_READ,
    query=(Param("q", {"type": "string", "maxLength": people.MAX_SEARCH},
                 "Part of an email or name, or the start of a legacy username or contact id."),
           Param("portal", SLUG, "Only the people of this portal."), *PAGE_PARAMS),
    responses={200: ("A page of people", page_of(USER)), **errors_of(401, 403, 404, 422)},
)
def list_users(actor: Actor, query: dict[str, Any]) -> Any:
    scope = actor.portal_ids(PEOPLE_READ)
    if query["portal"]:
        scope = {portal_in_scope(actor, query["portal"], PEOPLE_READ).id}
    return paginate(people.search_people(scope, query["q"] or ""), query, serialize_user)


@operation(
    "GET", "/users/{sub}",
    summary=("One person: status, portals, contacts, MFA method kinds and dates, how many "
             "sessions are live (never a password, code or secret)"),
    tag=TAG, permission=PEOPLE_READ, path_params=PERSON_PATH,
    responses={200: ("The person", PERSON), **errors_of(401, 403, 404)},
)
def get_user(actor: Actor, sub: str, query: dict[str, Any]) -> Any:
    return serialize_person(actor, person_in_scope(actor, sub, PEOPLE_READ))


@operation(
    "POST", "/users",
    summary=("Create a person by invitation: the account is made without a password and "
             "the person is emailed a single-use link to choose their own (staff never set or "
             "know a password). 409 when the email has an account: invite that person instead"),
    tag=TAG, permission=PEOPLE_MANAGE, body=NEW_USER,
    responses={201: ("The person and their invitation", CREATED),
               **errors_of(400, 401, 403, 404, 409, 422)},
)
def create_person(actor: Actor, query: dict[str, Any], body: dict[str, Any]) -> Any:
    portal = portal_in_scope(actor, body["portal"], PEOPLE_MANAGE)
    email = normalise_email(body["email"])
    if db.session.execute(db.select(User.id).filter_by(email=email)).first() is not None:
        raise ApiProblem(409, "An account with this email exists: invite the person with "
                              f"POST /portals/{portal.slug}/invitations.")
    try:
        user = create_user(email, None, body.get("name"))
    except UserError as exc:
        raise from_domain_error(exc) from None
    try:
        invitation = invitations.send_invitation(portal, email, body.get("name"),
                                                 message=body.get("message"),
                                                 actor=actor.label)
    except invitations.InvitationError as exc:
        # Nobody could ever use an account whose invitation was refused: it goes again.
        db.session.rollback()
        db.session.delete(user)
        db.session.commit()
        raise from_domain_error(exc) from None
    audit.record("user.created", actor=actor.label, subject=user.email, portal=portal.slug)
    return ({"user": serialize_user(user), "invitation": serialize_invitation(invitation)},
            201, {"Location": f"/admin/api/v1/users/{user.sub}"})


# -- help-desk actions -------------------------------------------------------------------


@operation(
    "POST", "/users/{sub}/disable",
    summary=("Disable the account: sign-in refused, every session ended, every token "
             "revoked. A portal's client may do it only to people of its portal alone"),
    tag=TAG, permission=PEOPLE_MANAGE, path_params=PERSON_PATH,
    responses={200: ("The person, disabled", PERSON), **PERSON_ERRORS},
)
def disable_user(actor: Actor, sub: str, query: dict[str, Any]) -> Any:
    user = person_in_scope(actor, sub, PEOPLE_MANAGE, everywhere=True)
    _act(people.disable_person, user, actor.label, acting_portal(actor, PEOPLE_MANAGE, user))
    return serialize_person(actor, user)


@operation(
    "POST", "/users/{sub}/enable",
    summary="Let a disabled account sign in again (ended sessions stay ended)",
    tag=TAG, permission=PEOPLE_MANAGE, path_params=PERSON_PATH,
    responses={200: ("The person, active", PERSON), **PERSON_ERRORS},
)
def enable_user(actor: Actor, sub: str, query: dict[str, Any]) -> Any:
    user = person_in_scope(actor, sub, PEOPLE_MANAGE, everywhere=True)
    _act(people.enable_person, user, actor.label, acting_portal(actor, PEOPLE_MANAGE, user))
    return serialize_person(actor, user)


@operation(
    "POST", "/users/{sub}/unlock",
    summary="Clear the person's failed sign-in and wrong-code counters",
    tag=TAG, permission=PEOPLE_HELP, path_params=PERSON_PATH,
    responses={200: ("The person, unlocked", PERSON), **errors_of(401, 403, 404)},
)
def unlock_user(actor: Actor, sub: str, query: dict[str, Any]) -> Any:
    user = person_in_scope(actor, sub, PEOPLE_HELP)
    people.unlock_person(user, actor.label, acting_portal(actor, PEOPLE_HELP, user))
    return serialize_person(actor, user)


@operation(
    "POST", "/users/{sub}/end-sessions",
    summary="Sign the person out everywhere (relying parties told by back-channel logout)",
    tag=TAG, permission=PEOPLE_HELP, path_params=PERSON_PATH,
    responses={200: ("How many live sessions ended", {
        "type": "object", "additionalProperties": False, "required": ["sessions_ended"],
        "properties": {"sessions_ended": {"type": "integer", "minimum": 0}}}),
        **errors_of(401, 403, 404)},
)
def end_user_sessions(actor: Actor, sub: str, query: dict[str, Any]) -> Any:
    user = person_in_scope(actor, sub, PEOPLE_HELP)
    ended = people.end_person_sessions(user, actor.label,
                                       acting_portal(actor, PEOPLE_HELP, user))
    return {"sessions_ended": ended}


@operation(
    "POST", "/users/{sub}/reset-mfa",
    summary=("Reset two-step verification (lost phone): methods, recovery codes and trusted "
             "browsers removed, sessions ended, the person told; they enrol again at their "
             "next sign-in. `reason` goes to the audit log"),
    tag=TAG, permission=PEOPLE_HELP, path_params=PERSON_PATH, body=REASON,
    responses={200: ("The person, without MFA", PERSON),
               **errors_of(400, 401, 403, 404, 422)},
)
def reset_user_mfa(actor: Actor, sub: str, query: dict[str, Any], body: dict[str, Any]) -> Any:
    user = person_in_scope(actor, sub, PEOPLE_HELP, everywhere=True)
    _act(people.reset_person_mfa, user, body["reason"], actor.label,
         acting_portal(actor, PEOPLE_HELP, user))
    return serialize_person(actor, user)


@operation(
    "POST", "/users/{sub}/send-reset",
    summary="Email the person a single-use link to choose a new password",
    tag=TAG, permission=PEOPLE_HELP, path_params=PERSON_PATH, body=RESET,
    responses={202: ("The email is queued", {
        "type": "object", "additionalProperties": False, "required": ["email", "portal"],
        "properties": {"email": {"type": "string"}, "portal": NULLABLE_STRING}}),
        **errors_of(400, 401, 403, 404, 422)},
)
def send_user_reset(actor: Actor, sub: str, query: dict[str, Any], body: dict[str, Any]) -> Any:
    user = person_in_scope(actor, sub, PEOPLE_HELP)
    portal = None
    if body.get("portal"):
        portal = portal_in_scope(actor, body["portal"], PEOPLE_HELP)
        if portal.id not in people.person_portal_ids(user):
            raise invalid_portal("portal: not one of the person's portals")
    elif not actor.is_global(PEOPLE_HELP):
        raise invalid_portal("portal: name the portal the email is for")
    _act(people.send_reset_email, user, portal, actor.label)
    return {"email": user.email, "portal": portal.slug if portal else None}, 202


# -- legacy accounts ---------------------------------------------------------------------


@operation(
    "POST", "/portals/{slug}/legacy-accounts/import",
    summary=("Create or update a portal's legacy accounts from a CSV body (the columns of "
             "`idp users import`: legacy_username,email,name,phone,contact_id,password_hash"
             "[,salt][,scheme]); idempotent; bad rows reported by line, the rest imported"),
    tag=TAG, permission=LEGACY_WRITE, path_params={"slug": SLUG},
    body=CSV_BODY, body_media_type=CSV_MEDIA_TYPE,
    responses={200: ("What the import did, row by row", LEGACY_REPORT),
               **errors_of(401, 403, 404, 422), **CSV_ERRORS},
)
def import_legacy_accounts(actor: Actor, slug: str, query: dict[str, Any], body: str) -> Any:
    portal = portal_in_scope(actor, slug, LEGACY_WRITE)
    rows = csv_rows(importer.read_legacy_rows, importer.LegacyImportError)
    report = importer.import_legacy_accounts(portal, rows)
    audit.record("legacy.imported", actor=actor.label, portal=portal.slug,
                 created=report.created, updated=report.updated, unchanged=report.unchanged,
                 rejected=len(report.errors))
    return report.as_dict()


@operation(
    "GET", "/portals/{slug}/legacy-accounts/status",
    summary="How far a portal's move to email usernames is: total, migrated, pending, linked",
    tag=TAG, permission=LEGACY_READ, path_params={"slug": SLUG},
    responses={200: ("Counts of the portal's legacy accounts", LEGACY_STATUS),
               **errors_of(401, 403, 404)},
)
def legacy_accounts_status(actor: Actor, slug: str, query: dict[str, Any]) -> Any:
    return legacy_status(portal_in_scope(actor, slug, LEGACY_READ)).as_dict()


# -- helpers -----------------------------------------------------------------------------


def person_in_scope(actor: Actor, sub: str, permission: str, everywhere: bool = False) -> User:
    """The person `sub` if `actor` may see them (else 404) and do `permission` (else 403).

    `everywhere`: the action changes the account at every portal; the console's rule
    (`idp.admin.people.refusal`) applies: a portal's client must reach all of the person's
    portals, and only an administrator acts on staff.
    """
    user = db.session.execute(db.select(User).filter_by(sub=sub)).scalar_one_or_none()
    if user is None or not people.visible_to(user, actor.portal_ids(PEOPLE_READ)):
        raise ApiProblem(404, "No such person, or not one this client can see.")
    why = people.refusal(actor, permission, user, everywhere=everywhere)
    if why is not None:
        raise ApiProblem(403, why)
    return user


def acting_portal(actor: Actor, permission: str, user: User) -> Portal | None:
    """The portal a portal's client acts for (on the audit event); None for an admin."""
    allowed = actor.portal_ids(permission)
    if allowed is None:
        return None
    mine = sorted(allowed & people.person_portal_ids(user))
    return db.session.get(Portal, mine[0]) if mine else None


def invalid_portal(message: str) -> ApiProblem:
    return from_domain_error(ValueError(message))


def _act(action: Any, *args: Any) -> None:
    """Run a people action; its refusals ("field: why") become 409 (state) or 422 (input)."""
    try:
        action(*args)
    except people.PersonError as exc:
        db.session.rollback()
        if str(exc).startswith("status:"):
            raise ApiProblem(409, str(exc).removeprefix("status: ")) from None
        raise from_domain_error(exc) from None


def serialize_user(user: User) -> dict[str, Any]:
    return {
        "sub": user.sub,
        "email": None if is_placeholder(user) else user.email,
        "name": user.name,
        "email_verified": user.email_verified,
        "status": "active" if user.is_active else "disabled",
        "created_at": timestamp(user.created_at),
    }


def serialize_person(actor: Actor, user: User) -> dict[str, Any]:
    """What staff may know about a person, limited to the portals `actor` sees."""
    details = people.person_details(user, actor.portal_ids(PEOPLE_READ))
    return {
        **serialize_user(user),
        "locked": details.throttle.is_locked,
        "has_password": user.password_hash is not None,
        "password_changed_at": timestamp(user.password_changed_at),
        "portals": [{
            "slug": facts.portal.slug, "name": facts.portal.name,
            "contact_ids": list(facts.contact_ids),
            "legacy_usernames": list(facts.legacy_usernames),
            "invitation_status": facts.invitation_status,
        } for facts in details.portals],
        "contacts": [
            {"portal": facts.portal.slug, "contact_id": contact_id,
             "preferred_username": username}
            for facts in details.portals
            for contact_id, username in zip(facts.contact_ids, facts.preferred_usernames,
                                            strict=True)],
        "mfa_methods": [{
            "kind": method.kind, "created_at": timestamp(method.created_at),
            "confirmed_at": timestamp(method.confirmed_at),
            "last_used_at": timestamp(method.last_used_at),
        } for method in details.methods],
        "sessions": len(details.sessions),
    }
