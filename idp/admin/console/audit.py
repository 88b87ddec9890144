"""The audit log in the console: find events by filter, newest first, and export them as CSV.

The CSV export has these columns, always in this order (UTF-8, a header row first):
id, time_utc (RFC 3339), kind, actor, subject, portal, client_id, ip, user_agent, details
(a JSON object). A cell that a spreadsheet would run as a formula (starting with = + - @,
a tab or a carriage return) gets a leading ' so it is read as text: subjects are typed by
anyone on the sign-in page. The export streams, so a large log does not sit in memory.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from flask import Response, request, stream_with_context
from sqlalchemy import func

from idp import audit
from idp.admin.console import bp
from idp.admin.console.pages import Forbidden, console_page, nav_item, render
from idp.admin.roles import AUDIT_READ, Actor
from idp.clock import utcnow
from idp.db import db
from idp.models import AuditEvent, Portal

PER_PAGE = 50
CSV_COLUMNS = ("id", "time_utc", "kind", "actor", "subject", "portal", "client_id", "ip",
               "user_agent", "details")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

nav_item("audit_list", "Audit log", AUDIT_READ,
         "Every security event: sign-ins, MFA, resets, invitations, admin actions; "
         "filter and export as CSV.")


@bp.get("/audit")
@console_page(AUDIT_READ)
def audit_list(actor: Actor) -> Any:
    scope = actor.portal_ids(AUDIT_READ)
    try:
        wanted = audit.parse_filter(request.args)
        page = _page_number(request.args.get("page"))
    except ValueError as error:
        return _refused_filter(actor, scope, error)
    _check_portal(scope, wanted)
    statement = audit.select_events(wanted, scope)
    total = db.session.scalar(
        db.select(func.count()).select_from(statement.order_by(None).subquery())) or 0
    pages = max(1, -(-total // PER_PAGE))
    page = min(page, pages)
    events = db.session.execute(
        statement.limit(PER_PAGE).offset((page - 1) * PER_PAGE)).scalars().all()
    return render("audit/list", actor, events=events, total=total, page=page, pages=pages,
                  filter_args=wanted.as_args(), error=None, **_form_context(scope))


@bp.get("/audit/export.csv")
@console_page(AUDIT_READ)
def audit_export(actor: Actor) -> Any:
    scope = actor.portal_ids(AUDIT_READ)
    try:
        wanted = audit.parse_filter(request.args)
    except ValueError as error:
        return _refused_filter(actor, scope, error)
    _check_portal(scope, wanted)
    statement = audit.select_events(wanted, scope)
    # Reading the log is itself worth knowing about (who took a copy, of what).
    audit.record("audit.exported", actor=actor.label, filters=wanted.as_args())
    name = f"audit-events-{utcnow():%Y%m%dT%H%M%SZ}.csv"
    return Response(stream_with_context(_csv_rows(statement)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


def _refused_filter(actor: Actor, scope: set[int] | None, error: ValueError) -> Any:
    """The page again, saying which filter is wrong (400, nothing searched)."""
    return render("audit/list", actor, error=str(error), events=[], total=0, page=1, pages=1,
                  filter_args={}, **_form_context(scope)), 400


def _form_context(scope: set[int] | None) -> dict[str, Any]:
    return {"values": {name: request.args.get(name, "")[:audit.MAX_FILTER_LENGTH]
                       for name in audit.FILTER_ARGS},
            "portals": _visible_portals(scope), "kinds": _known_kinds(scope),
            "csv_columns": CSV_COLUMNS}


def _csv_rows(statement: Any) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for number, event in enumerate(audit.iterate_events(statement), start=1):
        data = audit.event_json(event)
        data["time_utc"] = data.pop("at")
        data["details"] = json.dumps(data["details"], sort_keys=True, ensure_ascii=False,
                                     separators=(",", ":"))
        writer.writerow([_cell(data[column]) for column in CSV_COLUMNS])
        if number % 200 == 0:
            yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _cell(value: Any) -> str:
    """Text a spreadsheet will not run as a formula (OWASP "CSV injection")."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _page_number(raw: str | None) -> int:
    if not raw:
        return 1
    if not raw.isdigit() or not 1 <= int(raw) <= 1_000_000:
        raise ValueError("page: a whole number from 1")
    return int(raw)


def _check_portal(scope: set[int] | None, wanted: audit.EventFilter) -> None:
    """A portal administrator may filter by their own portals only."""
    if scope is None or not wanted.portal:
        return
    portal_id = db.session.execute(
        db.select(Portal.id).filter_by(slug=wanted.portal)).scalar_one_or_none()
    if portal_id not in scope:
        raise Forbidden("Your role does not allow this portal's audit log.")


def _visible_portals(scope: set[int] | None) -> list[tuple[str, str]]:
    statement = db.select(Portal.slug, Portal.name).order_by(Portal.name)
    if scope is not None:
        statement = statement.where(Portal.id.in_(scope))
    return [(slug, name) for slug, name in db.session.execute(statement)]


def _known_kinds(scope: set[int] | None) -> list[str]:
    """Kinds seen in the log (suggestions for the kind field), with their prefixes."""
    statement = db.select(AuditEvent.kind).distinct()
    if scope is not None:
        statement = statement.where(AuditEvent.id.in_(
            audit.select_events(audit.EventFilter(), scope).with_only_columns(AuditEvent.id)
            .order_by(None)))
    kinds = set(db.session.execute(statement).scalars())
    return sorted(kinds | {kind.split(".", 1)[0] + "." for kind in kinds if "." in kind})
