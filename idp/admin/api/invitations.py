"""Invitations API: list a portal's invitations, invite one person or a CSV, resend.

Sending is idp.invitations' (one person, a bulk file, a resend): this module only reads
the request, scopes it to the client's portal and records who did it. Bulk takes JSON
`{"csv": ..., "template": ...}` so the template travels with the file in one validated
document (no multipart, no template in a query string).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, or_
from sqlalchemy.orm import selectinload

from idp import audit, invitations
from idp.admin.api.contacts import SLUG, portal_in_scope, timestamp
from idp.admin.api.pagination import paginate
from idp.admin.api.problems import ApiProblem, field_error, from_domain_error
from idp.admin.api.registry import Param, operation
from idp.admin.api.schemas import (
    DATE_TIME,
    NULLABLE_DATE_TIME,
    NULLABLE_STRING,
    PAGE_PARAMS,
    errors_of,
    page_of,
)
from idp.admin.roles import INVITATIONS_READ, INVITATIONS_SEND, Actor
from idp.clock import utcnow
from idp.db import db
from idp.models import ActionLink, Invitation

TAG = "invitations"
MAX_ID = 2**31 - 1  # the largest PostgreSQL `integer`: ids past it are simply unknown

INVITATION = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "email", "name", "contact_id", "status", "sent_at", "opened_at",
                 "accepted_at", "resent_count", "link_expires_at", "created_at"],
    "properties": {
        "id": {"type": "integer"},
        "email": {"type": "string"},
        "name": NULLABLE_STRING,
        "contact_id": NULLABLE_STRING,
        "status": {"type": "string", "enum": list(invitations.STATUSES)},
        "sent_at": DATE_TIME,
        "opened_at": NULLABLE_DATE_TIME,
        "accepted_at": NULLABLE_DATE_TIME,
        "resent_count": {"type": "integer", "minimum": 0},
        "link_expires_at": NULLABLE_DATE_TIME,
        "created_at": DATE_TIME,
    },
}

NEW_INVITATION = {
    "type": "object",
    "additionalProperties": False,
    "required": ["email"],
    "properties": {
        "email": {"type": "string", "format": "email", "minLength": 3,
                  "maxLength": invitations.MAX_EMAIL},
        "name": {"type": "string", "maxLength": invitations.MAX_NAME},
        "contact_id": {"type": "string", "maxLength": invitations.MAX_CONTACT_ID,
                       "description": "The portal's contact id, linked on acceptance"},
        "message": {"type": "string", "minLength": 1, "maxLength": invitations.MAX_MESSAGE,
                    "description": "Plain text instead of the portal's invitation message; "
                                   "{{ login_link }} places the link"},
    },
}

BULK = {
    "type": "object",
    "additionalProperties": False,
    "required": ["csv"],
    "properties": {
        "csv": {"type": "string", "minLength": 1, "maxLength": 1024 * 1024,
                "description": "CSV with a header holding at least `email` (also `name`, "
                               "`contact_id`, any columns the template uses)"},
        "template": {"type": "string", "minLength": 1, "maxLength": invitations.MAX_MESSAGE,
                     "description": "Jinja text with {{ login_link }} and the file's columns; "
                                    "default: the portal's invitation message"},
    },
}

BULK_REPORT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["rows", "totals"],
    "properties": {
        "rows": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["row", "email", "outcome", "reason", "invitation_id"],
            "properties": {
                "row": {"type": "integer", "minimum": 2,
                        "description": "Row of the file (the header is row 1)"},
                "email": {"type": "string"},
                "outcome": {"type": "string", "enum": ["sent", "skipped", "failed"]},
                "reason": {"type": "string"},
                "invitation_id": {"type": ["integer", "null"]},
            },
        }},
        "totals": {"type": "object", "additionalProperties": False,
                   "required": ["sent", "skipped", "failed"],
                   "properties": {k: {"type": "integer", "minimum": 0}
                                  for k in ("sent", "skipped", "failed")}},
    },
}

ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}


@operation(
    "GET", "/portals/{slug}/invitations",
    summary="List a portal's invitations, newest first, optionally by status",
    tag=TAG, permission=INVITATIONS_READ, path_params={"slug": SLUG},
    query=(Param("status", {"type": "string", "enum": list(invitations.STATUSES)},
                 "Only invitations in this status."), *PAGE_PARAMS),
    responses={200: ("A page of invitations", page_of(INVITATION)),
               **errors_of(401, 403, 404, 422)},
)
def list_invitations(actor: Actor, slug: str, query: dict[str, Any]) -> Any:
    portal = portal_in_scope(actor, slug, INVITATIONS_READ)
    statement = (db.select(Invitation).where(Invitation.portal_id == portal.id)
                 .options(selectinload(Invitation.link)).order_by(Invitation.id.desc()))
    if query["status"]:
        statement = (statement.outerjoin(ActionLink, ActionLink.id == Invitation.link_id)
                     .where(_status_column() == query["status"]))
    return paginate(statement, query, serialize_invitation)


@operation(
    "POST", "/portals/{slug}/invitations",
    summary=("Invite one person: an email with a single-use link to choose a password. "
             "A pending invitation of the same email is sent again with a new link"),
    tag=TAG, permission=INVITATIONS_SEND, path_params={"slug": SLUG}, body=NEW_INVITATION,
    responses={201: ("The invitation, sent", INVITATION), **errors_of(400, 401, 403, 404, 422)},
)
def create_invitation(actor: Actor, slug: str, query: dict[str, Any],
                      body: dict[str, Any]) -> Any:
    portal = portal_in_scope(actor, slug, INVITATIONS_SEND)
    try:
        invitation = invitations.send_invitation(
            portal, body["email"], body.get("name"), body.get("contact_id"),
            body.get("message"), actor=actor.label)
    except invitations.InvitationError as exc:
        raise from_domain_error(exc) from None
    return serialize_invitation(invitation), 201


@operation(
    "POST", "/portals/{slug}/invitations/bulk",
    summary=("Invite everyone in a CSV (JSON body: `csv`, optional `template`); every row is "
             "reported as sent, skipped (bad or duplicate email, already invited or accepted) "
             "or failed. Re-running a file sends nothing twice"),
    tag=TAG, permission=INVITATIONS_SEND, path_params={"slug": SLUG}, body=BULK,
    responses={200: ("Each row's outcome and the totals", BULK_REPORT),
               **errors_of(400, 401, 403, 404, 422)},
)
def bulk_invitations(actor: Actor, slug: str, query: dict[str, Any],
                     body: dict[str, Any]) -> Any:
    portal = portal_in_scope(actor, slug, INVITATIONS_SEND)
    try:
        rows = invitations.read_invitation_csv(body["csv"])
        result = invitations.bulk_invite(portal, rows, body.get("template"))
    except invitations.InvitationError as exc:
        message = str(exc)
        if message.startswith("file:"):
            raise field_error("csv", message) from None
        raise from_domain_error(exc) from None
    for row in result.rows:
        if row.outcome == "sent":
            audit.record("invitation.sent", actor=actor.label, subject=row.email,
                         portal=portal.slug, bulk=True, commit=False)
    db.session.commit()
    return result.as_dict()


@operation(
    "POST", "/portals/{slug}/invitations/{invitation_id}/resend",
    summary="Send a pending invitation again: a new link, the old one stops working",
    tag=TAG, permission=INVITATIONS_SEND,
    path_params={"slug": SLUG, "invitation_id": ID},
    responses={200: ("The invitation, sent again", INVITATION),
               **errors_of(401, 403, 404, 409)},
)
def resend_invitation(actor: Actor, slug: str, invitation_id: str,
                      query: dict[str, Any]) -> Any:
    portal = portal_in_scope(actor, slug, INVITATIONS_SEND)
    invitation = db.session.get(Invitation, path_id(invitation_id))
    if invitation is None or invitation.portal_id != portal.id:
        raise ApiProblem(404, f"No invitation {invitation_id} at portal {slug!r}.")
    if invitation.accepted_at is not None:
        raise ApiProblem(409, f"The invitation was accepted on "
                              f"{invitation.accepted_at:%Y-%m-%d}: nothing to resend.")
    try:
        invitations.resend_invitation(invitation, actor=actor.label)
    except invitations.InvitationError as exc:  # e.g. the account was disabled since
        raise ApiProblem(409, str(exc)) from None
    return serialize_invitation(invitation)


def path_id(value: str) -> int:
    """A numeric id from the path; anything else is simply not found."""
    if not value.isascii() or not value.isdigit() or not 0 < int(value) <= MAX_ID:
        raise ApiProblem(404, f"No such id: {value[:40]!r}.")
    return int(value)


def serialize_invitation(invitation: Invitation) -> dict[str, Any]:
    """Never the message or the link: staff see where an invitation is, not its secret."""
    link = invitation.link
    return {
        "id": invitation.id,
        "email": invitation.email,
        "name": invitation.name,
        "contact_id": invitation.contact_external_id,
        "status": invitation.status,
        "sent_at": timestamp(invitation.sent_at),
        "opened_at": timestamp(invitation.opened_at),
        "accepted_at": timestamp(invitation.accepted_at),
        "resent_count": invitation.resent_count,
        "link_expires_at": timestamp(link.expires_at) if link is not None else None,
        "created_at": timestamp(invitation.created_at),
    }


def _status_column() -> Any:
    """`Invitation.status` as SQL (the same order of tests), so a page can filter on it."""
    link_dead = and_(ActionLink.id.is_not(None), ActionLink.used_at.is_(None),
                     or_(ActionLink.superseded_at.is_not(None), ActionLink.expires_at <= utcnow()))
    return case(
        (Invitation.accepted_at.is_not(None), "accepted"),
        (link_dead, "expired"),
        (Invitation.opened_at.is_not(None), "opened"),
        (Invitation.resent_count > 0, "resent"),
        else_="sent",
    )
