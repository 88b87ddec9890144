"""A portal's contact directory: CSV import, matching a person to a contact, linking.

Contacts are the portal's own records (DESIGN.md). Importing never links a contact to an
account, even when an account has the same email: the file's email is only what the
portal typed. A contact is linked to a person once that person has shown they own the
email: by following a self-registration link, or, for an account whose email is already
verified, the next time the portal asks for its `profile` claims (`contact_for`).
"""

from __future__ import annotations

import csv
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func

from idp.db import db
from idp.models import Contact, Portal, User
from idp.models.user import normalise_email
from idp.users import EMAIL_PATTERN

COLUMNS = ("contact_id", "email", "name", "phone")
REQUIRED_COLUMNS = ("contact_id", "email")
LIMITS = {"contact_id": 100, "email": 320, "name": 200, "phone": 40}
# Contacts the IdP creates (self-registration in `create` mode) get ids in their own
# namespace, so that they never collide with ids the portal's system assigns later.
NEW_CONTACT_PREFIX = "R"
NEW_CONTACT_DIGITS = 8


class ContactImportError(ValueError):
    """The file as a whole cannot be imported (unreadable, wrong header, unknown portal)."""


@dataclass(frozen=True)
class RowError:
    row: int  # the line of the file (the header is line 1)
    message: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}"


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return (f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
                f"{len(self.errors)} rejected")


# -- import ---------------------------------------------------------------------------------


def import_contacts_file(path: str | Path, portal_slug: str) -> ImportReport:
    """Import a CSV file (header contact_id,email,name,phone; other columns ignored)."""
    portal = find_portal(portal_slug)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = list(read_contact_rows(handle))
    except UnicodeDecodeError:
        raise ContactImportError(f"{path}: not UTF-8 text") from None
    except csv.Error as exc:
        raise ContactImportError(f"{path}: not a valid CSV file: {exc}") from None
    return import_contacts(portal, rows)


def find_portal(slug: str) -> Portal:
    portal = db.session.execute(db.select(Portal).filter_by(slug=slug)).scalar_one_or_none()
    if portal is None:
        raise ContactImportError(f"portal: no portal with slug {slug!r}")
    return portal


def read_contact_rows(lines: Iterable[str]) -> Iterable[tuple[int, dict[str, str]]]:
    """(line number, row) pairs; header names are matched case-insensitively."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise ContactImportError("the file is empty (expected the header "
                                 + ",".join(COLUMNS) + ")")
    names = [name.strip().lower() for name in header]
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise ContactImportError(f"the header has no {' or '.join(missing)} column "
                                 f"(expected {','.join(COLUMNS)})")
    positions = {name: names.index(name) for name in COLUMNS if name in names}
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        yield reader.line_num, {
            name: cells[index].strip() if index < len(cells) else ""
            for name, index in positions.items()
        }


def import_contacts(portal: Portal, rows: Iterable[tuple[int, Mapping[str, str]]]) -> ImportReport:
    """Create or update contacts by their id; a bad row is reported and the rest go on.

    Importing twice changes nothing the second time. Blank cells clear the stored value
    (the file is the portal's directory). Contacts missing from the file are kept.
    """
    report = ImportReport()
    existing = {
        contact.external_id: contact
        for contact in db.session.execute(
            db.select(Contact).filter_by(portal_id=portal.id)
        ).scalars()
    }
    seen: dict[str, int] = {}
    for line, row in rows:
        problem = _row_problem(row, seen)
        if problem is not None:
            report.errors.append(RowError(line, problem))
            continue
        external_id = row["contact_id"]
        seen[external_id] = line
        values = {
            "email": normalise_email(row["email"]) or None,
            "name": row.get("name") or None,
            "phone": row.get("phone") or None,
        }
        contact = existing.get(external_id)
        if contact is None:
            contact = Contact(portal_id=portal.id, external_id=external_id, **values)
            db.session.add(contact)
            existing[external_id] = contact
            report.created += 1
        elif any(getattr(contact, key) != value for key, value in values.items()):
            # A linked contact stays linked when its email changes: the link records who
            # proved ownership, the directory's email is only how the portal reaches them.
            for key, value in values.items():
                setattr(contact, key, value)
            report.updated += 1
        else:
            report.unchanged += 1
    db.session.commit()
    return report


def _row_problem(row: Mapping[str, str], seen: dict[str, int]) -> str | None:
    external_id = row.get("contact_id", "")
    if not external_id:
        return "contact_id: missing"
    if external_id in seen:
        return f"contact_id: {external_id!r} already appears on row {seen[external_id]}"
    for name, limit in LIMITS.items():
        if len(row.get(name) or "") > limit:
            return f"{name}: longer than {limit} characters"
    email = normalise_email(row.get("email", ""))
    if email and not EMAIL_PATTERN.match(email):
        return f"email: not a valid address: {row['email']!r}"
    return None


# -- matching and linking ---------------------------------------------------------------------


def match_contact(portal: Portal, email: str, name: str | None = None) -> Contact | None:
    """The one unlinked contact of `portal` with `email` (case-insensitive), or None.

    Families often share one email: among several such contacts the one with the same
    name wins; when that does not single one out, nothing matches (linking a person to a
    relative's record would show them the relative's data).
    """
    candidates = list(
        db.session.execute(
            db.select(Contact)
            .where(Contact.portal_id == portal.id,
                   func.lower(Contact.email) == normalise_email(email),
                   Contact.user_id.is_(None))
            .order_by(Contact.id)
        ).scalars()
    )
    if len(candidates) == 1:
        return candidates[0]
    wanted = _name_key(name)
    named = [c for c in candidates if wanted and _name_key(c.name) == wanted]
    return named[0] if len(named) == 1 else None


def _name_key(name: str | None) -> str:
    return " ".join((name or "").casefold().split())


def link_contact(contact: Contact, user: User) -> Contact:
    """Link `contact` to `user`; its per-portal username is fixed now if not set."""
    contact.user_id = user.id
    contact.user = user
    if not contact.preferred_username:
        contact.preferred_username = default_username(user.email, contact.external_id)
    return contact


def create_contact_for(portal: Portal, user: User, name: str | None = None) -> Contact:
    """A new contact of `portal` for `user` (self-registration in `create` mode), linked."""
    contact = Contact(portal_id=portal.id, external_id=_new_external_id(portal),
                      email=user.email, name=name or user.name)
    db.session.add(contact)
    return link_contact(contact, user)


def _new_external_id(portal: Portal) -> str:
    while True:
        number = secrets.randbelow(10**NEW_CONTACT_DIGITS)
        candidate = f"{NEW_CONTACT_PREFIX}{number:0{NEW_CONTACT_DIGITS}d}"
        taken = db.session.execute(
            db.select(Contact.id).filter_by(portal_id=portal.id, external_id=candidate)
        ).first()
        if taken is None:
            return candidate


def default_username(email: str, external_id: str) -> str:
    """The part of the email before `@` plus the contact id ("pat" + "1234" -> "pat1234")."""
    return email.rpartition("@")[0] + external_id


def contact_for(user: User, portal: Portal) -> Contact | None:
    """The user's contact at `portal`.

    A verified email is the same proof self-registration asks for, so an account whose
    email is verified is linked here to the portal's matching contact (e.g. one imported
    after the account existed, which the person could not register for: they already have
    an account). An unverified email links nothing.
    """
    contact = db.session.execute(
        db.select(Contact).filter_by(portal_id=portal.id, user_id=user.id).order_by(Contact.id)
    ).scalars().first()
    if contact is not None or not user.email_verified:
        return contact
    contact = match_contact(portal, user.email, user.name)
    if contact is not None:
        link_contact(contact, user)
        db.session.commit()
    return contact


def preferred_username(contact: Contact, user: User) -> str:
    """The username released to the portal: the stored one, else the default."""
    return contact.preferred_username or default_username(user.email, contact.external_id)
