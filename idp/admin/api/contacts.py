"""Contacts API: a portal's directory, listed, read one by one, and imported from CSV.

Also what the other portal-scoped resources (users, invitations) share: `portal_in_scope`
(a portal outside the client's reach answers 404, exactly as an unknown slug does: for a
portal's own client other portals do not exist, idp.admin.roles), `csv_body` and
`file_problem` for CSV uploads, and `timestamp`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from typing import Any

from flask import request
from sqlalchemy import func, or_
from sqlalchemy.orm import selectinload

from idp import audit, contacts
from idp.admin.access import CONSOLE_PORTAL_SLUG
from idp.admin.api.pagination import paginate
from idp.admin.api.problems import ApiProblem, invalid
from idp.admin.api.registry import Param, operation, require
from idp.admin.api.schemas import (
    DATE_TIME,
    NULLABLE_STRING,
    PAGE_PARAMS,
    PROBLEM,
    errors_of,
    page_of,
    timestamp,
)
from idp.admin.roles import CONTACTS_READ, CONTACTS_WRITE, Actor
from idp.db import db
from idp.models import Contact, Portal
from idp.portals import find_portal

TAG = "contacts"
SLUG = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"}
CSV_MEDIA_TYPE = "text/csv"
# Flask's MAX_CONTENT_LENGTH (1 MiB) caps a request: about 10,000 rows; split bigger files.
CSV_BODY = {"type": "string", "maxLength": 1024 * 1024,
            "description": "UTF-8 CSV with a header row (at most 1 MiB per request)."}

CSV_ERRORS: dict[int, tuple[str, dict[str, Any] | None]] = {
    413: ("The body is over 1 MiB", PROBLEM), 415: ("The body is not text/csv", PROBLEM)}

CONTACT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["contact_id", "email", "name", "phone", "user", "preferred_username",
                 "created_at"],
    "properties": {
        "contact_id": {"type": "string", "description": "The portal's own id (claim contact_id)"},
        "email": NULLABLE_STRING,
        "name": NULLABLE_STRING,
        "phone": NULLABLE_STRING,
        "user": {"type": ["string", "null"],
                 "description": "The `sub` of the person linked to this contact, if any"},
        "preferred_username": NULLABLE_STRING,
        "created_at": DATE_TIME,
    },
}

ROW_ERROR = {
    "type": "object", "additionalProperties": False, "required": ["row", "message"],
    "properties": {"row": {"type": "integer", "minimum": 2,
                           "description": "Line of the file (the header is line 1)"},
                   "message": {"type": "string"}},
}

IMPORT_REPORT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["created", "updated", "unchanged", "errors"],
    "properties": {
        "created": {"type": "integer", "minimum": 0},
        "updated": {"type": "integer", "minimum": 0},
        "unchanged": {"type": "integer", "minimum": 0},
        "errors": {"type": "array", "items": ROW_ERROR},
    },
}


# -- shared by the portal-scoped resources ------------------------------------------------


def visible_portal(actor: Actor, slug: str, permission: str) -> Portal:
    """The portal `slug` if `actor` may do `permission` there; else 404 (not 403).

    Answering an out-of-scope portal like an unknown one keeps a portal's client from
    learning which other portals exist.
    """
    portal = find_portal(slug)
    allowed = actor.portal_ids(permission)
    if portal is None or (allowed is not None and portal.id not in allowed):
        raise ApiProblem(404, f"No portal {slug!r}.")
    return portal


def portal_in_scope(actor: Actor, slug: str, permission: str) -> Portal:
    """`visible_portal`, refusing changes to the console's own portal (its people are staff)."""
    portal = visible_portal(actor, slug, permission)
    require(actor, permission, portal.id)
    if portal.slug == CONSOLE_PORTAL_SLUG and not permission.endswith(".read"):
        # Its people are staff: nobody is imported, invited or emailed into it by API.
        raise ApiProblem(403, "The admin console's own portal is managed by the IdP.")
    return portal


def csv_body() -> str:
    """The request's CSV text: Content-Type text/csv, UTF-8 (a BOM is allowed)."""
    if request.mimetype != CSV_MEDIA_TYPE:
        raise ApiProblem(415, "Send the file as the body with Content-Type: text/csv.")
    try:
        return request.get_data().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise invalid("The file is not UTF-8 text.",
                      [{"field": "(body)", "message": "not UTF-8 text"}]) from None


def csv_rows(read: Callable[[io.StringIO], Iterable[Any]],
             file_error: type[Exception]) -> list[Any]:
    """The rows `read` (an importer's row reader) finds in the body; 422 for a bad file."""
    try:
        return list(read(io.StringIO(csv_body(), newline="")))
    except file_error as exc:
        raise file_problem(str(exc)) from None
    except csv.Error as exc:
        raise file_problem(f"not a valid CSV file: {exc}") from None


def file_problem(message: str) -> ApiProblem:
    """422 for a file that cannot be imported at all (empty, wrong header, not CSV)."""
    return invalid(f"The file cannot be imported: {message}",
                   [{"field": "(body)", "message": message}])


# -- operations ---------------------------------------------------------------------------


@operation(
    "GET", "/portals/{slug}/contacts",
    summary="List a portal's contacts, by contact id; `q` finds an id, email or name",
    tag=TAG, permission=CONTACTS_READ, path_params={"slug": SLUG},
    query=(Param("q", {"type": "string", "minLength": 1, "maxLength": 320},
                 "Part of a contact id, email or name (case-insensitive)."), *PAGE_PARAMS),
    responses={200: ("A page of contacts", page_of(CONTACT)), **errors_of(401, 403, 404, 422)},
)
def list_contacts(actor: Actor, slug: str, query: dict[str, Any]) -> Any:
    portal = portal_in_scope(actor, slug, CONTACTS_READ)
    statement = (db.select(Contact).where(Contact.portal_id == portal.id)
                 .options(selectinload(Contact.user)).order_by(Contact.external_id))
    if query["q"]:
        like = "%" + _escape_like(query["q"].strip().lower()) + "%"
        statement = statement.where(or_(
            func.lower(Contact.external_id).like(like, escape="\\"),
            func.lower(Contact.email).like(like, escape="\\"),
            func.lower(Contact.name).like(like, escape="\\"),
        ))
    return paginate(statement, query, serialize_contact)


@operation(
    "GET", "/portals/{slug}/contacts/{contact_id}",
    summary="One contact of a portal, by the portal's contact id",
    tag=TAG, permission=CONTACTS_READ,
    path_params={"slug": SLUG, "contact_id": {"type": "string", "minLength": 1,
                                              "maxLength": contacts.LIMITS["contact_id"]}},
    responses={200: ("The contact", CONTACT), **errors_of(401, 403, 404)},
)
def get_contact(actor: Actor, slug: str, contact_id: str, query: dict[str, Any]) -> Any:
    portal = portal_in_scope(actor, slug, CONTACTS_READ)
    contact = db.session.execute(
        db.select(Contact).filter_by(portal_id=portal.id, external_id=contact_id)
    ).scalar_one_or_none()
    if contact is None:
        raise ApiProblem(404, f"No contact {contact_id!r} at portal {slug!r}.")
    return serialize_contact(contact)


@operation(
    "POST", "/portals/{slug}/contacts/import",
    summary=("Create or update contacts from a CSV body (header contact_id,email,name,phone, "
             "as `idp contacts import`); bad rows are reported by line, the rest imported"),
    tag=TAG, permission=CONTACTS_WRITE, path_params={"slug": SLUG},
    body=CSV_BODY, body_media_type=CSV_MEDIA_TYPE,
    responses={200: ("What the import did, with each rejected row", IMPORT_REPORT),
               **errors_of(401, 403, 404, 422), **CSV_ERRORS},
)
def import_contacts(actor: Actor, slug: str, query: dict[str, Any], body: str) -> Any:
    portal = portal_in_scope(actor, slug, CONTACTS_WRITE)
    rows = csv_rows(contacts.read_contact_rows, contacts.ContactImportError)
    report = contacts.import_contacts(portal, rows)
    audit.record("contacts.imported", actor=actor.label, portal=portal.slug,
                 created=report.created, updated=report.updated, unchanged=report.unchanged,
                 rejected=len(report.errors))
    return {"created": report.created, "updated": report.updated,
            "unchanged": report.unchanged,
            "errors": [{"row": e.row, "message": e.message} for e in report.errors]}


def serialize_contact(contact: Contact) -> dict[str, Any]:
    return {
        "contact_id": contact.external_id,
        "email": contact.email,
        "name": contact.name,
        "phone": contact.phone,
        "user": contact.user.sub if contact.user is not None else None,
        "preferred_username": contact.preferred_username,
        "created_at": timestamp(contact.created_at),
    }



def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
