"""Legacy accounts in the console: each portal's move from usernames to emails (issue 4).

Per portal: how many legacy accounts exist, moved to an email (and of those, joined an
account that existed), still pending, retired; the pending list as CSV (the columns of
`idp users legacy-status --export-pending`, the input of the bulk invitation); a button
that sends that bulk invitation; and the switch that retires the portal's usernames.
legacy.read sees and exports; legacy.write (with invitations.send for the mailing) acts.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from flask import Response, request, stream_with_context

from idp import audit
from idp.admin.access import CONSOLE_PORTAL_SLUG
from idp.admin.console import bp
from idp.admin.console.pages import console_page, done, nav_item, render, require
from idp.admin.roles import INVITATIONS_SEND, LEGACY_READ, LEGACY_WRITE, Actor
from idp.clock import utcnow
from idp.db import db
from idp.errors import NotFound
from idp.invitations import InvitationError, bulk_invite
from idp.legacy import accounts
from idp.legacy.accounts import EXPORT_COLUMNS, pending_rows
from idp.models import Portal
from idp.security.csrf import check_csrf

nav_item("legacy_status", "Legacy accounts", LEGACY_READ,
         "Each portal's move from old usernames to emails: counts, the pending list, "
         "reminder invitations, retiring the usernames.")


class PortalNotFound(NotFound):
    title = "No such portal"


@bp.get("/legacy")
@console_page(LEGACY_READ)
def legacy_status(actor: Actor) -> str:
    rows = [(portal, accounts.legacy_status(portal)) for portal in _portals(actor)]
    return render("legacy/list", actor, rows=rows)


@bp.get("/legacy/<slug>")
@console_page(LEGACY_READ)
def legacy_portal(actor: Actor, slug: str) -> str:
    return _portal_page(actor, _portal(actor, slug))


def _portal_page(actor: Actor, portal: Portal, error: str | None = None,
                 template: str = "") -> str:
    return render(
        "legacy/portal", actor, portal=portal, status=accounts.legacy_status(portal),
        error=error, message_template=template, columns=EXPORT_COLUMNS,
        may_write=actor.can(LEGACY_WRITE, portal.id),
        may_invite=actor.can(LEGACY_WRITE, portal.id) and actor.can(INVITATIONS_SEND,
                                                                    portal.id),
    )


@bp.get("/legacy/<slug>/pending.csv")
@console_page(LEGACY_READ)
def legacy_export(actor: Actor, slug: str) -> Response:
    portal = _portal(actor, slug)
    # Personal data leaves the IdP: who took a copy, and how big, is worth knowing.
    audit.record("legacy.pending_exported", actor=actor.label, portal=portal.slug,
                 rows=accounts.legacy_status(portal).pending)
    name = f"legacy-pending-{portal.slug}-{utcnow():%Y%m%d}.csv"
    return Response(stream_with_context(_csv(portal)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


def _csv(portal: Portal) -> Iterator[str]:
    """The file `idp users legacy-status --export-pending` writes, streamed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for number, row in enumerate(pending_rows(portal)):
        writer.writerow(row)
        if number % 500 == 499:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@bp.post("/legacy/<slug>/invite")
@console_page(LEGACY_WRITE)
def legacy_invite(actor: Actor, slug: str) -> Any:
    check_csrf()
    portal = _portal(actor, slug)
    require(actor, LEGACY_WRITE, portal.id)
    require(actor, INVITATIONS_SEND, portal.id)
    template = request.form.get("template", "").strip()
    rows = [dict(zip(EXPORT_COLUMNS, row, strict=True)) for row in pending_rows(portal)]
    try:
        result = bulk_invite(portal, rows, template or None)
    except InvitationError as exc:
        db.session.rollback()
        return _portal_page(actor, portal, error=str(exc), template=template), 400
    totals = result.totals
    audit.record("legacy.invitations_sent", actor=actor.label, portal=portal.slug,
                 custom_message=bool(template), sent=totals["sent"],
                 skipped=totals["skipped"], failed=totals["failed"])
    return done("console.legacy_portal",
                f"Invitations to the pending people of {portal.name}: {totals['sent']} sent, "
                f"{totals['skipped']} skipped (no email on file, or invited already with "
                f"a link that still works), {totals['failed']} failed.", slug=portal.slug)


@bp.post("/legacy/<slug>/retire")
@console_page(LEGACY_WRITE)
def legacy_retire(actor: Actor, slug: str) -> Any:
    check_csrf()
    portal = _portal(actor, slug)
    require(actor, LEGACY_WRITE, portal.id)
    choice = request.form.get("retired", "")
    if choice not in ("yes", "no"):
        return _portal_page(actor, portal, error="retired: choose yes or no"), 400
    retire = choice == "yes"
    if portal.policy.legacy_usernames_retired != retire:
        pending = accounts.legacy_status(portal).pending
        portal.policy = portal.policy.with_changes(legacy_usernames_retired=retire)
        audit.record("legacy.usernames_retired" if retire else "legacy.usernames_restored",
                     actor=actor.label, portal=portal.slug, commit=False,
                     pending_when_retired=pending if retire else None)
        db.session.commit()
    notice = (f"Legacy usernames of {portal.name} are retired: only emails sign in there."
              if retire else f"Legacy usernames of {portal.name} sign in again.")
    return done("console.legacy_portal", notice, slug=portal.slug)


def _portals(actor: Actor) -> list[Portal]:
    """The portals `actor` may see the legacy accounts of (not the console's own)."""
    statement = db.select(Portal).where(Portal.slug != CONSOLE_PORTAL_SLUG)
    allowed = actor.portal_ids(LEGACY_READ)
    if allowed is not None:
        statement = statement.where(Portal.id.in_(sorted(allowed)))
    return list(db.session.execute(statement.order_by(Portal.name)).scalars())


def _portal(actor: Actor, slug: str) -> Portal:
    portal = db.session.execute(
        db.select(Portal).filter_by(slug=slug)).scalar_one_or_none()
    if portal is None or portal.slug == CONSOLE_PORTAL_SLUG \
            or not actor.can(LEGACY_READ, portal.id):
        raise PortalNotFound("There is no such portal, or not one you can see.")
    return portal
