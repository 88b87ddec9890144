"""The audit log: recording security events, and finding them again.

The application only ever inserts audit rows; the database refuses updates and deletes
(triggers in migration 0002), so the log is append-only.

Never put a password, code, token or secret in `details`.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import has_request_context, request
from sqlalchemy import Select, and_, or_

from idp.db import db
from idp.models import Client, Portal, User
from idp.models.audit import AuditEvent
from idp.models.user import normalise_email

log = logging.getLogger("idp.audit")


def record(
    kind: str,
    *,
    actor: str = "system",
    subject: str | None = None,
    portal: str | None = None,
    client_id: str | None = None,
    client: Client | None = None,
    commit: bool = True,
    **details: Any,
) -> AuditEvent:
    """Add an audit event (with the request's address and user agent when there is one).

    An event about a client also carries that client's portal, so a portal's
    administrators see it (sign-ins name the client, not the portal). Give the `client`
    when it is at hand (its portal is then not looked up), else its `client_id`.
    """
    ip = user_agent = None
    if has_request_context():
        ip = request.remote_addr
        user_agent = (request.user_agent.string or "")[:300] or None
    if client is not None:
        client_id = client.client_id
        portal = portal or (client.portal.slug if client.portal is not None else None)
    elif portal is None and client_id is not None:
        portal = _portal_of_client(client_id)
    # Cut to the columns' sizes: a typed "email" may be longer (PostgreSQL refuses it).
    event = AuditEvent(kind=kind, actor=actor[:200], subject=(subject or "")[:320] or None,
                       portal=portal, client_id=client_id, ip=ip, user_agent=user_agent,
                       details=details)
    db.session.add(event)
    if commit:
        db.session.commit()
    log.info("audit %s actor=%s subject=%s", kind, actor, subject)
    return event


def _portal_of_client(client_id: str) -> str | None:
    # No autoflush: recording must not flush the caller's half-made changes early.
    with db.session.no_autoflush:
        return db.session.execute(
            db.select(Portal.slug).join(Client, Client.portal_id == Portal.id)
            .where(Client.client_id == client_id)).scalar_one_or_none()


# -- finding events ---------------------------------------------------------------------

MAX_FILTER_LENGTH = 320


@dataclass(frozen=True)
class EventFilter:
    """What to look for; empty strings match everything. `until` is exclusive."""

    kind: str = ""      # a prefix: "signin." or "signin.failure"
    actor: str = ""     # "admin:pat@example.org", or an email, a sub, a client id
    subject: str = ""   # an email or a sub (either finds the person's events)
    portal: str = ""    # a portal's slug (events of its clients included)
    client: str = ""    # a client id
    ip: str = ""        # one address
    since: datetime | None = None
    until: datetime | None = None

    def as_args(self) -> dict[str, str]:
        """The filter as query-string values (the form's names), for links and exports."""
        args = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("since", "until") and getattr(self, f.name)}
        if self.since is not None:
            args["from"] = _format_moment(self.since)
        if self.until is not None:
            args["to"] = _format_moment(self.until, end=True)
        return args


# The query-string names, for the console's form and the API's parameters.
FILTER_ARGS = ("kind", "actor", "subject", "portal", "client", "ip", "from", "to")


def parse_filter(values: Mapping[str, Any]) -> EventFilter:
    """An `EventFilter` from query-string values; ValueError("field: why") when one is bad."""
    text: dict[str, str] = {}
    for name in FILTER_ARGS:
        value = values.get(name)
        value = "" if value is None else str(value).strip()
        if len(value) > MAX_FILTER_LENGTH:
            raise ValueError(f"{name}: at most {MAX_FILTER_LENGTH} characters")
        if any(ord(character) < 32 or ord(character) == 127 for character in value):
            raise ValueError(f"{name}: no control characters")
        text[name] = value
    ip = text["ip"]
    if ip:
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            raise ValueError("ip: an IPv4 or IPv6 address, like 203.0.113.7") from None
    since = _parse_moment("from", text["from"], end=False)
    until = _parse_moment("to", text["to"], end=True)
    if since is not None and until is not None and until <= since:
        raise ValueError("to: must be after from")
    return EventFilter(kind=text["kind"], actor=text["actor"], subject=text["subject"],
                       portal=text["portal"], client=text["client"], ip=ip,
                       since=since, until=until)


def _parse_moment(name: str, value: str, *, end: bool) -> datetime | None:
    """A date (the whole day, in UTC) or an RFC 3339 date-time, as naive UTC."""
    if not value:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime(day.year, day.month, day.day)
            return moment + timedelta(days=1) if end else moment
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        # An end date-time is inclusive: "to 09:30:00" includes events at 09:30:00.
        return parsed + timedelta(microseconds=1) if end else parsed
    except (ValueError, OverflowError):
        raise ValueError(f"{name}: a date (2026-01-31) or a date-time "
                         f"(2026-01-31T09:30:00Z)") from None


def _format_moment(moment: datetime, *, end: bool = False) -> str:
    if end:
        if moment.time() == datetime.min.time():
            return (moment - timedelta(days=1)).date().isoformat()
        moment -= timedelta(microseconds=1)
    elif moment.time() == datetime.min.time():
        return moment.date().isoformat()
    return moment.isoformat() + "Z"


def select_events(wanted: EventFilter, portal_ids: set[int] | None = None) -> Select[Any]:
    """The events matching `wanted`, newest first, limited to `portal_ids` (None: all).

    An event belongs to a portal when it names the portal or one of the portal's clients.
    """
    statement = db.select(AuditEvent)
    if portal_ids is not None:
        statement = statement.where(_in_portals(portal_ids))
    if wanted.kind:
        statement = statement.where(AuditEvent.kind.startswith(wanted.kind, autoescape=True))
    if wanted.actor:
        statement = statement.where(AuditEvent.actor.in_(_actor_labels(wanted.actor)))
    if wanted.subject:
        statement = statement.where(AuditEvent.subject.in_(_subject_names(wanted.subject)))
    if wanted.portal:
        portal_id = db.session.execute(
            db.select(Portal.id).filter_by(slug=wanted.portal)).scalar_one_or_none()
        statement = statement.where(
            _in_portals({portal_id}) if portal_id is not None
            else AuditEvent.portal == wanted.portal)
    if wanted.client:
        statement = statement.where(AuditEvent.client_id == wanted.client)
    if wanted.ip:
        statement = statement.where(AuditEvent.ip == wanted.ip)
    if wanted.since is not None:
        statement = statement.where(AuditEvent.at >= wanted.since)
    if wanted.until is not None:
        statement = statement.where(AuditEvent.at < wanted.until)
    return statement.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())


def _in_portals(portal_ids: set[int]) -> Any:
    slugs = db.select(Portal.slug).where(Portal.id.in_(portal_ids)).scalar_subquery()
    clients = db.select(Client.client_id).where(Client.portal_id.in_(portal_ids))
    return or_(AuditEvent.portal.in_(slugs), AuditEvent.client_id.in_(clients.scalar_subquery()))


def _person(text: str) -> User | None:
    return db.session.execute(db.select(User).where(
        or_(User.email == normalise_email(text), User.sub == text))).scalar_one_or_none()


def _subject_names(text: str) -> set[str]:
    names = {text, normalise_email(text)}
    person = _person(text)
    if person is not None:
        names |= {person.email, person.sub}
    return names


def _actor_labels(text: str) -> set[str]:
    labels = {text, f"client:{text}", f"admin:{normalise_email(text)}"}
    person = _person(text)
    if person is not None:
        labels |= {f"user:{person.sub}", f"admin:{person.email}"}
    return labels


def iterate_events(statement: Select[Any], chunk: int = 500) -> Iterator[AuditEvent]:
    """Every event of `statement` (from `select_events`), read in chunks (for exports).

    Keyset pages on (at, id): a long export never holds the whole result in memory, and
    events that arrive while it runs neither shift nor repeat rows.
    """
    last: tuple[datetime, int] | None = None
    while True:
        page = statement
        if last is not None:
            page = page.where(or_(AuditEvent.at < last[0],
                                  and_(AuditEvent.at == last[0], AuditEvent.id < last[1])))
        rows = db.session.execute(page.limit(chunk)).scalars().all()
        yield from rows
        if len(rows) < chunk:
            return
        last = (rows[-1].at, rows[-1].id)


def event_json(event: AuditEvent) -> dict[str, Any]:
    """One event as the API and exports show it."""
    return {
        "id": event.id,
        "at": event.at.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z"),
        "kind": event.kind,
        "actor": event.actor,
        "subject": event.subject,
        "portal": event.portal,
        "client_id": event.client_id,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "details": dict(event.details or {}),
    }
