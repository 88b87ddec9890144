"""Staff invitations: one person, or a CSV of many, each with its own set-password link.

An invitation is a row staff can see and act on (`Invitation.status`: sent, opened,
accepted, expired, resent) plus a single-use "invitation" link to /password/<token>,
valid for the portal policy's `set_password_link_days`. Opening the link marks the
invitation opened; choosing a password there accepts it and links the portal's contact.

Choices (the issue leaves them open):

- **A person who already has an account** (a user with a password) is still invited: the
  email says "you already have an account, sign in with your email" and carries the same
  kind of single-use link, which then works like a reset link (choose a new password).
  Refusing would make staff guess who has an account; a different screen would tell staff
  nothing they may not know anyway (they typed the address). The invitation becomes
  "accepted" only when the link is used: a plain sign-in at the portal does not accept it.
  A disabled account is refused.
- **Inviting someone with a pending invitation** at the same portal reuses that invitation
  (new message, new link, the old link superseded, status "resent"), so staff see one row
  per person and portal. An accepted invitation is never re-sent by `bulk_invite`;
  `send_invitation` sends a new one (staff asked explicitly).
- **Re-running a bulk file**: rows of people who accepted are skipped; rows whose invitation
  is pending with a link that still works are skipped too (no second email for the same
  open invitation; `resend_invitation` is the explicit way); rows whose invitation expired
  or was superseded are re-sent with a fresh link.
- **Messages** are plain text (never HTML: the HTML email escapes them). A message may place
  the link with `{{ login_link }}`; otherwise the link follows the message. A bulk
  template is Jinja rendered in a sandbox (never Flask's environment) with the row's
  columns, `email`, `name`, `contact_id`, `portal_name` and `login_link`.
- **Contacts**: on acceptance the portal contact with the invitation's contact id gets the
  user (created when the portal does not have it yet). A contact already linked to another
  person is left alone and logged: staff resolve that, the IdP does not guess.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Flask
from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape
from sqlalchemy.orm import selectinload

from idp import audit, contacts
from idp.account.completion import AFTER_PASSWORD_SET
from idp.account.links import AFTER_LINK_OPENED, build_link, link_url, supersede_links
from idp.clock import utcnow
from idp.db import db
from idp.models import ActionLink, Contact, Invitation, Portal, User
from idp.models.user import normalise_email
from idp.notify.outbox import queue_email
from idp.users import EMAIL_PATTERN

log = logging.getLogger(__name__)

STATUSES = ("sent", "opened", "accepted", "expired", "resent")
LOGIN_LINK = "{{ login_link }}"
_LOGIN_LINK_PATTERN = re.compile(r"\{\{\s*login_link\s*\}\}")
# Names a bulk template may use besides the file's own columns.
TEMPLATE_NAMES = frozenset({"login_link", "email", "name", "contact_id", "portal_name"})
MAX_MESSAGE = 20_000
MAX_NAME = 200
MAX_CONTACT_ID = 100
MAX_EMAIL = 320
BATCH = 500  # rows per query and per commit in bulk
# Characters that are legal in quoted local parts but only ever cause trouble in headers.
_EMAIL_FORBIDDEN = set('<>()[],;:"\\')

_sandbox = ImmutableSandboxedEnvironment(
    autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True
)


class InvitationError(ValueError):
    """Invalid invitation input; the message names the field and says why."""


# -- single invitations -----------------------------------------------------------------


def send_invitation(
    portal: Portal,
    email: str | None,
    name: str | None = None,
    contact_external_id: str | None = None,
    message: str | None = None,
    actor: str = "cli",
) -> Invitation:
    """Invite one person to `portal`: an invitation, its link and the email, committed.

    `message` overrides the portal's `invitation_message`. See the module docstring for
    people who already have an account or a pending invitation. `actor` is for the audit log.
    """
    address = check_email(email)
    text = check_message(portal.policy.invitation_message if message is None else message)
    user = _user_by_email(address)
    _check_user(user, address)
    send = _Send(address, _clean(name, "name", MAX_NAME),
                 _clean(contact_external_id, "contact_id", MAX_CONTACT_ID), text, user,
                 existing=_pending_invitation(portal, address))
    [invitation] = _deliver(portal, [send])
    audit.record("invitation.sent", actor=actor, subject=address, portal=portal.slug,
                 commit=False)
    db.session.commit()
    return invitation


def resend_invitation(invitation: Invitation, message: str | None = None,
                      actor: str = "cli") -> Invitation:
    """A new link (the older one superseded) and email; status "resent"; committed."""
    if invitation.accepted_at is not None:
        raise InvitationError(
            f"{invitation.email}: the invitation was already accepted on "
            f"{invitation.accepted_at:%Y-%m-%d}"
        )
    user = _user_by_email(invitation.email)
    _check_user(user, invitation.email)
    text = invitation.message if message is None else check_message(message)
    _deliver(invitation.portal, [_Send(invitation.email, invitation.name,
                                       invitation.contact_external_id, text, user,
                                       existing=invitation)])
    audit.record("invitation.resent", actor=actor, subject=invitation.email,
                 portal=invitation.portal.slug, commit=False)
    db.session.commit()
    return invitation


def list_invitations(portal: Portal, status: str | None = None) -> list[Invitation]:
    """The portal's invitations, oldest first, optionally only those with `status`."""
    if status is not None and status not in STATUSES:
        raise InvitationError(f"status: one of {', '.join(STATUSES)}")
    invitations = db.session.scalars(
        db.select(Invitation).filter_by(portal_id=portal.id)
        .options(selectinload(Invitation.link)).order_by(Invitation.id)
    ).all()
    return [i for i in invitations if status is None or i.status == status]


def find_invitation(portal: Portal, email: str) -> Invitation | None:
    """The latest invitation of `email` to `portal`."""
    return db.session.scalars(
        db.select(Invitation).filter_by(portal_id=portal.id, email=normalise_email(email))
        .order_by(Invitation.id.desc()).limit(1)
    ).first()


def check_email(value: str | None) -> str:
    """The normalised address, or InvitationError saying why it cannot be invited."""
    email = normalise_email(value or "")
    if not email:
        raise InvitationError("email: missing")
    if (len(email) > MAX_EMAIL or not EMAIL_PATTERN.match(email)
            or not email.isprintable() or _EMAIL_FORBIDDEN.intersection(email)):
        raise InvitationError(f"email: not a valid address: {email!r}")
    return email


def check_message(message: str) -> str:
    """A plain-text message: not empty, not huge; `{{login_link}}` spellings unified."""
    text = message.replace("\r\n", "\n").strip()
    if not text:
        raise InvitationError("message: must not be empty")
    if len(text) > MAX_MESSAGE:
        raise InvitationError(f"message: at most {MAX_MESSAGE} characters")
    return _LOGIN_LINK_PATTERN.sub(LOGIN_LINK, text)


# -- bulk ---------------------------------------------------------------------------------


@dataclass
class RowResult:
    """The outcome of one row: sent, skipped (bad email, duplicate, accepted) or failed."""

    row: int  # numbered as in a spreadsheet: the header is row 1
    email: str
    outcome: str
    reason: str = ""
    invitation_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "email": self.email, "outcome": self.outcome,
                "reason": self.reason, "invitation_id": self.invitation_id}


@dataclass
class BulkResult:
    rows: list[RowResult] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        counts = {"sent": 0, "skipped": 0, "failed": 0}
        for result in self.rows:
            counts[result.outcome] += 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {"rows": [r.as_dict() for r in self.rows], "totals": self.totals}


def read_invitation_csv(text: str) -> list[dict[str, str]]:
    """Rows of a CSV with a header holding at least `email` (names normalised: `Contact ID`
    is `contact_id`)."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader, None)
        if header is None:
            raise InvitationError("file: empty (expected a header with an email column)")
        columns = [_column_name(h) for h in header]
        if "email" not in columns:
            raise InvitationError("file: the header has no email column")
        # Blank records stay, so that row numbers match the spreadsheet's.
        return [dict(zip(columns, values, strict=False)) for values in reader]
    except csv.Error as exc:
        raise InvitationError(f"file: not valid CSV: {exc}") from None


def compile_template(source: str, columns: Iterable[str] = ()) -> Template:
    """A sandboxed message template; it must place `{{ login_link }}` and use only known
    names (the file's columns and TEMPLATE_NAMES)."""
    if not source.strip():
        raise InvitationError("template: must not be empty")
    if len(source) > MAX_MESSAGE:
        raise InvitationError(f"template: at most {MAX_MESSAGE} characters")
    source = source.replace("\r\n", "\n").strip() + "\n"
    try:
        names = meta.find_undeclared_variables(_sandbox.parse(source))
        template = _sandbox.from_string(source)
    except TemplateSyntaxError as exc:
        raise InvitationError(f"template: line {exc.lineno}: {exc.message}") from None
    if "login_link" not in names:
        raise InvitationError("template: must contain {{ login_link }} (each person's link)")
    unknown = sorted(names - TEMPLATE_NAMES - set(columns))
    if unknown:
        raise InvitationError(
            f"template: unknown placeholder(s) {', '.join(unknown)}: not a column of the file"
        )
    return template


def bulk_invite(
    portal: Portal, rows: Sequence[Mapping[str, str | None]], template: str | None = None
) -> BulkResult:
    """One invitation and email per good row; every row reported (sent/skipped/failed).

    Queries and commits go by batches of BATCH rows, so 10,000 rows take seconds and an
    interrupted run leaves finished batches in place (re-running skips them).
    """
    normalised = [{_column_name(k): (v or "").strip() for k, v in row.items() if k}
                  for row in rows]
    columns = {key for row in normalised for key in row}
    compiled = compile_template(template, columns) if template is not None else None
    default_message = check_message(portal.policy.invitation_message)
    result = BulkResult()
    candidates: list[tuple[RowResult, dict[str, str], str]] = []
    first_row: dict[str, int] = {}
    for number, row in enumerate(normalised, start=2):
        raw = row.get("email", "")
        outcome = RowResult(number, raw, "skipped")
        result.rows.append(outcome)
        if not any(row.values()):
            outcome.reason = "empty row"
            continue
        try:
            email = check_email(raw)
        except InvitationError as exc:
            outcome.reason = "no email" if not raw else str(exc).removeprefix("email: ")
            continue
        outcome.email = email
        if email in first_row:
            outcome.reason = f"duplicate of row {first_row[email]}"
            continue
        first_row[email] = number
        candidates.append((outcome, row, email))

    for start in range(0, len(candidates), BATCH):
        batch = candidates[start:start + BATCH]
        known = _known_people(portal, [email for _, _, email in batch])
        sends: list[tuple[RowResult, _Send]] = []
        for outcome, row, email in batch:
            send = _plan_row(portal, outcome, row, email, known, compiled, default_message)
            if send is not None:
                sends.append((outcome, send))
        invitations = _deliver(portal, [send for _, send in sends])
        for (outcome, send), invitation in zip(sends, invitations, strict=True):
            outcome.outcome, outcome.invitation_id = "sent", invitation.id
            if send.existing is not None:
                outcome.reason = "resent: the earlier link had expired"
        db.session.commit()
    return result


@dataclass
class _Known:
    """What one batch's queries found: users, and each email's invitations here."""

    users: dict[str, User]
    invitations: dict[str, list[Invitation]]


def _known_people(portal: Portal, emails: list[str]) -> _Known:
    users = {u.email: u for u in db.session.scalars(
        db.select(User).where(User.email.in_(emails)))}
    invitations: dict[str, list[Invitation]] = {}
    for invitation in db.session.scalars(
        db.select(Invitation).where(Invitation.portal_id == portal.id,
                                    Invitation.email.in_(emails))
        .options(selectinload(Invitation.link)).order_by(Invitation.id)
    ):
        invitations.setdefault(invitation.email, []).append(invitation)
    return _Known(users, invitations)


def _plan_row(portal: Portal, outcome: RowResult, row: dict[str, str], email: str,
              known: _Known, template: Template | None, default_message: str) -> _Send | None:
    """What to send for this row, or None with the row reported skipped or failed."""
    history = known.invitations.get(email, [])
    accepted = next((i for i in history if i.accepted_at is not None), None)
    if accepted is not None:
        outcome.reason = f"already accepted on {_day(accepted.accepted_at)}"
        outcome.invitation_id = accepted.id
        return None
    pending = history[-1] if history else None
    if pending is not None and pending.link is not None and pending.link.state == "usable":
        outcome.reason = (f"already invited on {_day(pending.sent_at)}, the link still works "
                          "(resend to send a new one)")
        outcome.invitation_id = pending.id
        return None
    outcome.outcome = "failed"
    user = known.users.get(email)
    try:
        _check_user(user, email)
        name = _clean(row.get("name"), "name", MAX_NAME)
        contact_id = _clean(row.get("contact_id"), "contact_id", MAX_CONTACT_ID)
        message = default_message if template is None else _render_row(
            template, row, email, name, contact_id, portal.name)
    except InvitationError as exc:
        outcome.reason = str(exc)
        return None
    return _Send(email, name, contact_id, message, user, existing=pending)


def _render_row(template: Template, row: dict[str, str], email: str, name: str | None,
                contact_id: str | None, portal_name: str) -> str:
    context = {**row, "email": email, "name": name or "", "contact_id": contact_id or "",
               "portal_name": portal_name, "login_link": LOGIN_LINK}
    try:
        text = template.render(context)
    except TemplateError as exc:  # includes the sandbox's SecurityError
        raise InvitationError(f"template: {exc}") from None
    message = check_message(text)
    if LOGIN_LINK not in message:
        raise InvitationError("template: this row's message leaves out {{ login_link }}")
    return message


# -- delivery and follow-ups --------------------------------------------------------------


@dataclass
class _Send:
    """One invitation email to send: a new invitation, or `existing` sent again."""

    email: str
    name: str | None
    contact_id: str | None
    message: str
    user: User | None
    existing: Invitation | None = None


def _deliver(portal: Portal, sends: list[_Send]) -> list[Invitation]:
    """Create (or reuse) the invitations, issue their links, queue the emails; not committed.

    Works by batches: one INSERT for the invitations, links and emails each, and an UPDATE
    superseding older links only for invitations sent again (a new invitation has none).
    """
    now = utcnow()
    days = portal.policy.set_password_link_days
    invitations = []
    for send in sends:
        if send.existing is None:
            invitation = Invitation(portal=portal, email=send.email)
            db.session.add(invitation)
        else:
            invitation = send.existing
            invitation.resent_count += 1
            invitation.opened_at = None  # "opened" speaks of the current link
            supersede_links(send.email, "invitation", portal)
        invitation.name, invitation.contact_external_id = send.name, send.contact_id
        invitation.message, invitation.sent_at = send.message, now
        invitations.append(invitation)
    db.session.flush()  # the links name their invitations
    for send, invitation in zip(sends, invitations, strict=True):
        link, token = build_link(
            "invitation", send.email, days, user=send.user, portal=portal,
            data={"invitation_id": invitation.id, "name": send.name},
        )
        db.session.add(link)
        invitation.link = link
        _queue_invitation_email(portal, send, token, days)
    return invitations


def _queue_invitation_email(portal: Portal, send: _Send, token: str, days: int) -> None:
    url = link_url("account.set_password", token)
    text = send.message.replace(LOGIN_LINK, url)
    user = send.user
    queue_email(
        send.email, "invitation", portal_name=portal.name,
        name=send.name or (user.name if user else None), email=send.email,
        message=text, message_html=message_to_html(text, url), link=url,
        link_in_message=LOGIN_LINK in send.message,
        has_account=user is not None and user.password_hash is not None,
        lifetime="1 day" if days == 1 else f"{days} days",
    )


def message_to_html(text: str, url: str) -> Markup:
    """Plain text as escaped HTML paragraphs; the person's link becomes a link."""
    anchor = Markup('<a href="{0}">{0}</a>').format(url)
    paragraphs = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [anchor.join(escape(part) for part in line.split(url))
                 for line in block.splitlines()]
        paragraphs.append(Markup("<p>{}</p>").format(Markup("<br>\n").join(lines)))
    return Markup("\n").join(paragraphs)


def mark_invitation_opened(link: ActionLink) -> None:
    """AFTER_LINK_OPENED["invitation"]: the set-password page of the current link opened."""
    invitation = _invitation_of(link)
    if invitation is not None and invitation.opened_at is None:
        invitation.opened_at = link.opened_at or utcnow()


def accept_invitation(link: ActionLink, user: User) -> None:
    """AFTER_PASSWORD_SET["invitation"]: accepted, and the portal's contact gets the user."""
    invitation = _invitation_of(link)
    if invitation is None or invitation.accepted_at is not None:
        return
    invitation.accepted_at = utcnow()
    invitation.user_id = user.id
    audit.record("invitation.accepted", actor=f"user:{user.sub}", subject=user.email,
                 portal=invitation.portal.slug, commit=False)
    if invitation.opened_at is None:
        invitation.opened_at = link.opened_at or invitation.accepted_at
    if not user.name and invitation.name:
        user.name = invitation.name
    if invitation.contact_external_id:
        link_contact(invitation.portal, invitation.contact_external_id, user, invitation.name)


def link_contact(portal: Portal, external_id: str, user: User, name: str | None) -> Contact:
    """The portal's contact `external_id` linked to `user`, created when missing."""
    contact = db.session.scalars(
        db.select(Contact).filter_by(portal_id=portal.id, external_id=external_id)
    ).first()
    if contact is None:
        contact = Contact(portal_id=portal.id, external_id=external_id, name=name or user.name,
                          email=user.email)
        db.session.add(contact)
        contacts.link_contact(contact, user)
    elif contact.user_id is None:
        contacts.link_contact(contact, user)
    elif contact.user_id != user.id:
        log.warning("contact %s of portal %s is linked to another user; left as it is",
                    external_id, portal.slug)
    return contact


def init_app(app: Flask) -> None:
    """Register the invitation follow-ups of the set-password page."""
    AFTER_LINK_OPENED["invitation"] = mark_invitation_opened
    AFTER_PASSWORD_SET["invitation"] = accept_invitation


# -- helpers --------------------------------------------------------------------------------


def _invitation_of(link: ActionLink) -> Invitation | None:
    """The invitation whose *current* link is `link` (older links belong to nobody)."""
    invitation_id = (link.data or {}).get("invitation_id")
    if not isinstance(invitation_id, int):
        return None
    invitation = db.session.get(Invitation, invitation_id)
    return invitation if invitation is not None and invitation.link_id == link.id else None


def _pending_invitation(portal: Portal, email: str) -> Invitation | None:
    latest = find_invitation(portal, email)
    return latest if latest is not None and latest.accepted_at is None else None


def _user_by_email(email: str) -> User | None:
    return db.session.scalars(db.select(User).filter_by(email=email)).first()


def _check_user(user: User | None, email: str) -> None:
    if user is not None and not user.is_active:
        raise InvitationError(f"email: the account of {email} is disabled")


def _clean(value: str | None, field_name: str, limit: int) -> str | None:
    text = (value or "").strip()
    if len(text) > limit:
        raise InvitationError(f"{field_name}: at most {limit} characters")
    if text and not text.isprintable():
        raise InvitationError(f"{field_name}: contains control characters")
    return text or None


def _column_name(header: str) -> str:
    """`Contact ID` -> `contact_id`: CSV headers as template names."""
    return re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")


def _day(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d}" if moment is not None else "?"
