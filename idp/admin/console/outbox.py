"""The outbox in the console: queued, sent and failed email and text messages, with retry.

Staff see who a message went to, what it was (its kind), its status, attempts, last error
and times; never its body, which holds links and codes that are secrets. A subject is
shown only for kinds whose subject holds no code ("Your code for Lakeside MLS: 123456" is
one that does).

The outbox has no portal column, so a portal_admin sees the messages whose recipient is
one of its portal's people: an address or phone number of a person who belongs to the
portal, a contact, an invitation or a legacy account of the portal (or the email a legacy
account is moving to). Such a person's messages sent for another portal show too (kind,
subject and status only): that is the price of not guessing.
"""

from __future__ import annotations

from typing import Any

from flask import request
from sqlalchemy import CompoundSelect, func, select, union
from werkzeug.wrappers import Response

from idp import audit
from idp.admin.console import bp
from idp.admin.console.pages import console_page, done, nav_item, render
from idp.admin.people import people_of_portals
from idp.admin.roles import OUTBOX_READ, OUTBOX_RETRY, Actor
from idp.db import db
from idp.errors import NotFound, PageError
from idp.models import (
    Contact,
    Invitation,
    LegacyAccount,
    LegacyMigration,
    MfaMethod,
    OutboxMessage,
    User,
)
from idp.models.outbox import FAILED, QUEUED, SENDING, SENT
from idp.notify.worker import retry_message
from idp.security.csrf import check_csrf

PER_PAGE = 50
STATUSES = (QUEUED, SENDING, SENT, FAILED)
CHANNELS = {"email": "Email", "sms": "Text message"}
KIND_LABELS = {
    "invitation": "Invitation",
    "reset_password": "Password reset link",
    "register": "Registration link",
    "account_exists": "Account exists notice",
    "mfa_reset": "Two-step verification reset notice",
    "mfa_code": "Verification code",
    "verify_email": "Email confirmation code",
}
# Kinds whose subject line holds no code or link (the others' subjects are not shown).
SUBJECT_SHOWN = frozenset({"invitation", "reset_password", "register", "account_exists",
                           "mfa_reset"})

nav_item("outbox_list", "Outbox", OUTBOX_READ,
         "Email and text messages: queued, sent and failed, with retry.")


class MessageNotFound(NotFound):
    title = "No such message"


class CannotRetry(PageError):
    status_code = 409
    title = "Nothing to retry"


@bp.get("/outbox")
@console_page(OUTBOX_READ)
def outbox_list(actor: Actor) -> str:
    status = request.args.get("status", "")
    channel = request.args.get("channel", "")
    recipient = "".join(c for c in request.args.get("recipient", "") if c.isprintable())
    recipient = " ".join(recipient.split())[:320]
    status = status if status in STATUSES else ""
    channel = channel if channel in CHANNELS else ""
    statement = _visible(actor)
    if status:
        statement = statement.where(OutboxMessage.status == status)
    if channel:
        statement = statement.where(OutboxMessage.channel == channel)
    if recipient:
        statement = statement.where(OutboxMessage.recipient.contains(
            recipient.lower() if "@" in recipient else recipient, autoescape=True))
    total = db.session.scalar(
        db.select(func.count()).select_from(statement.subquery())) or 0
    pages = max(1, -(-total // PER_PAGE))
    page = min(_page_number(request.args.get("page")), pages)
    rows = db.session.execute(
        statement.order_by(OutboxMessage.id.desc())
        .limit(PER_PAGE).offset((page - 1) * PER_PAGE)).scalars().all()
    filters = {k: v for k, v in (("status", status), ("channel", channel),
                                 ("recipient", recipient)) if v}
    return render("outbox/list", actor, messages=rows, total=total, page=page, pages=pages,
                  filters=filters, statuses=STATUSES, channels=CHANNELS,
                  kind_labels=KIND_LABELS, subject_shown=SUBJECT_SHOWN,
                  may_retry=actor.can(OUTBOX_RETRY), retryable=_retryable)


@bp.post("/outbox/<int:message_id>/retry")
@console_page(OUTBOX_RETRY)
def outbox_retry(actor: Actor, message_id: int) -> Response:
    check_csrf()
    message = db.session.execute(
        _visible(actor, OUTBOX_RETRY).where(OutboxMessage.id == message_id)).scalar_one_or_none()
    if message is None:
        raise MessageNotFound("There is no such message, or not one you can see.")
    if not _retryable(message):
        raise CannotRetry("Only a failed message, or one waiting to be tried again, can be "
                          "retried.")
    previous = message.status
    retry_message(message)
    audit.record("outbox.retried", actor=actor.label, subject=message.recipient,
                 message_id=message.id, message_kind=message.kind, channel=message.channel,
                 status=previous, attempts=message.attempts)
    return done("console.outbox_list", f"Message {message.id} to {message.recipient} is "
                "queued to be sent again.", **_filters_of(request.form))


def _retryable(message: OutboxMessage) -> bool:
    """Failed for good, or queued again after a failed attempt (waiting for its backoff)."""
    return message.status == FAILED or (message.status == QUEUED and message.attempts > 0)


def _visible(actor: Actor, permission: str = OUTBOX_READ) -> Any:
    """The messages `actor` may see (a portal_admin: those to its portal's people)."""
    portal_ids = actor.portal_ids(permission)
    statement = db.select(OutboxMessage)
    if portal_ids is not None:
        statement = statement.where(OutboxMessage.recipient.in_(_recipients_of(portal_ids)))
    return statement


def _recipients_of(portal_ids: set[int]) -> CompoundSelect[Any]:
    """Every address and phone number of the people of `portal_ids`."""
    ids = sorted(portal_ids)
    people = people_of_portals(portal_ids)
    return union(
        select(User.email).where(User.id.in_(people)),
        select(MfaMethod.destination).where(MfaMethod.user_id.in_(people),
                                            MfaMethod.destination.is_not(None)),
        select(Contact.email).where(Contact.portal_id.in_(ids), Contact.email.is_not(None)),
        select(Invitation.email).where(Invitation.portal_id.in_(ids)),
        select(LegacyAccount.email).where(LegacyAccount.portal_id.in_(ids),
                                          LegacyAccount.email.is_not(None)),
        select(LegacyMigration.email).join(LegacyAccount).where(
            LegacyAccount.portal_id.in_(ids), LegacyMigration.email.is_not(None)),
    )


def _filters_of(values: Any) -> dict[str, str]:
    """The list's filters carried through the retry form, so the page comes back the same."""
    out = {}
    for key in ("status", "channel", "recipient", "page"):
        value = str(values.get(key, ""))[:320]
        if value:
            out[key] = value
    return out


def _page_number(value: str | None) -> int:
    try:
        number = int(value or "1")
    except ValueError:
        return 1
    return min(max(number, 1), 100_000)
