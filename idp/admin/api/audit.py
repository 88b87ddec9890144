"""Audit events API: the append-only log, filtered like the console's page, newest first.

A portal's own client (portal_admin) sees the events of its portal and its portal's
clients only; naming any other portal in `portal` is refused (403, the same for an
unknown slug, so nothing is learnt about other portals).
"""

from __future__ import annotations

from typing import Any

from idp import audit
from idp.admin.api.pagination import paginate
from idp.admin.api.problems import ApiProblem, from_domain_error
from idp.admin.api.registry import Param, operation
from idp.admin.api.schemas import DATE_TIME, NULLABLE_STRING, PAGE_PARAMS, errors_of, page_of
from idp.admin.roles import AUDIT_READ, Actor
from idp.db import db
from idp.models import Portal

TAG = "audit"
_TEXT = {"type": "string", "minLength": 1, "maxLength": audit.MAX_FILTER_LENGTH,
         "pattern": "^[^\\u0000-\\u001f\\u007f]+$"}
_MOMENT = {"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}]}

EVENT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "at", "kind", "actor", "subject", "portal", "client_id", "ip",
                 "user_agent", "details"],
    "properties": {
        "id": {"type": "integer", "description": "Increases with every event"},
        "at": DATE_TIME,
        "kind": {"type": "string", "description": "What happened, e.g. signin.failure"},
        "actor": {"type": "string", "description": (
            "Who did it: user:<sub>, admin:<email>, client:<client_id>, anonymous, cli, "
            "system")},
        "subject": {**NULLABLE_STRING, "description": "Whom it concerns: an email, a sub, "
                                                      "a client id"},
        "portal": {**NULLABLE_STRING, "description": "The portal's slug"},
        "client_id": NULLABLE_STRING,
        "ip": NULLABLE_STRING,
        "user_agent": NULLABLE_STRING,
        "details": {"type": "object", "description": "What else is known (never a secret)"},
    },
}

FILTERS = (
    Param("kind", {"type": "string", "minLength": 1, "maxLength": 60,
                   "pattern": "^[a-z0-9_.]+$"},
          "The start of the kind: `signin.` finds every sign-in event."),
    Param("actor", _TEXT, "Who acted: an actor label, or an email, sub or client id."),
    Param("subject", _TEXT, "Whom it concerns: an email or a sub (either finds the "
                            "person's events)."),
    Param("portal", {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"},
          "A portal's slug; its clients' events are included."),
    Param("client", _TEXT, "A client id."),
    Param("ip", {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]},
          "The address the request came from."),
    Param("from", _MOMENT, "From this date (UTC) or RFC 3339 date-time, inclusive."),
    Param("to", _MOMENT, "Up to this date (the whole day, UTC) or date-time, inclusive."),
)


@operation(
    "GET", "/audit-events",
    summary="Audit events, newest first, filtered by kind, actor, subject, portal, client, "
            "address and time",
    tag=TAG, permission=AUDIT_READ, query=(*FILTERS, *PAGE_PARAMS),
    responses={200: ("A page of events", page_of(EVENT)), **errors_of(401, 403, 422)},
)
def list_audit_events(actor: Actor, query: dict[str, Any]) -> Any:
    try:
        wanted = audit.parse_filter(query)
    except ValueError as error:
        raise from_domain_error(error) from None
    scope = actor.portal_ids(AUDIT_READ)
    if scope is not None and wanted.portal:
        portal_id = db.session.execute(
            db.select(Portal.id).filter_by(slug=wanted.portal)).scalar_one_or_none()
        if portal_id not in scope:
            raise ApiProblem(403, "The client's role does not allow this portal's events.")
    return paginate(audit.select_events(wanted, scope), query, audit.event_json)
