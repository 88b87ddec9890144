"""Importing legacy accounts: `idp users import FILE.csv --portal SLUG` and the admin API.

The file's header names its columns (case-insensitive, any order): `legacy_username`,
`email` and `password_hash` are required; `name`, `phone`, `contact_id`, `salt` and
`scheme` are optional; other columns are ignored. Every row is checked on its own: a bad
row is reported with its line number and the rest go on.

- **Idempotent**: accounts are keyed by portal and username (case-insensitive).
  Importing a file twice changes nothing the second time. A row for an existing account
  updates its email, name, phone and contact id; its password only when the file's hash
  differs from the one imported before (so an account re-hashed at sign-in keeps its
  argon2id hash). Accounts already migrated are left as they are, and accounts missing
  from the file are kept.
- **Hashes**: `idp.security.legacy_hashes` lists the formats; an unknown format rejects
  the row. An empty `password_hash` means "no password yet": the account is imported and
  counted as needing an invitation (`idp users legacy-status --export-pending`).
- **Emails** may be empty or wrong (the person confirms theirs at migration); a malformed
  one is dropped with a warning, so the person can still sign in by username.
- Fast: validation is string work; rows are written with bulk INSERT/UPDATE statements by
  batches (100,000 rows in seconds on SQLite; `bench/legacy_import.py`).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, update

from idp.clock import utcnow
from idp.db import db
from idp.legacy.accounts import username_key
from idp.models import LegacyAccount, Portal
from idp.models.user import normalise_email
from idp.security.legacy_hashes import LegacyHashError, detect_scheme
from idp.users import EMAIL_PATTERN

COLUMNS = ("legacy_username", "email", "name", "phone", "contact_id", "password_hash", "salt",
           "scheme")
REQUIRED_COLUMNS = ("legacy_username", "email", "password_hash")
LIMITS = {"legacy_username": 200, "email": 320, "name": 200, "phone": 40, "contact_id": 100}
BATCH = 5000
# Fields a re-import may change on an account not yet migrated.
PROFILE_FIELDS = ("legacy_username", "email", "name", "phone", "contact_id")
PASSWORD_FIELDS = ("password_hash", "password_scheme", "salt", "password_source")


class LegacyImportError(ValueError):
    """The file as a whole cannot be imported (unreadable, wrong header, unknown portal)."""


@dataclass(frozen=True)
class RowIssue:
    row: int  # the line of the file (the header is line 1)
    message: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}"


@dataclass
class LegacyImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    already_migrated: int = 0  # rows of accounts migrated since: left as they are
    without_password: int = 0  # rows imported with no password (to be invited)
    errors: list[RowIssue] = field(default_factory=list)
    warnings: list[RowIssue] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return (f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
                f"{self.already_migrated} already migrated (left as they are), "
                f"{len(self.errors)} rejected; {self.without_password} without a password "
                "(invite them)")

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created, "updated": self.updated, "unchanged": self.unchanged,
            "already_migrated": self.already_migrated,
            "without_password": self.without_password,
            "errors": [{"row": e.row, "message": e.message} for e in self.errors],
            "warnings": [{"row": w.row, "message": w.message} for w in self.warnings],
        }


class _RowProblem(Exception):
    pass


# -- reading ---------------------------------------------------------------------------------


def import_legacy_file(path: str | Path, portal_slug: str) -> LegacyImportReport:
    """Import the CSV at `path` into the portal `portal_slug`."""
    portal = db.session.execute(
        db.select(Portal).filter_by(slug=portal_slug)
    ).scalar_one_or_none()
    if portal is None:
        raise LegacyImportError(f"portal: no portal with slug {portal_slug!r}")
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            return import_legacy_accounts(portal, read_legacy_rows(handle))
    except FileNotFoundError:
        raise LegacyImportError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LegacyImportError(f"{path}: is a directory, not a CSV file") from None
    except UnicodeDecodeError:
        db.session.rollback()
        raise LegacyImportError(f"{path}: not UTF-8 text") from None
    except csv.Error as exc:
        db.session.rollback()
        raise LegacyImportError(f"{path}: not a valid CSV file: {exc}") from None


def read_legacy_rows(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) pairs of a CSV; header names are matched case-insensitively."""
    csv.field_size_limit(1 << 16)
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise LegacyImportError("the file is empty (expected the header "
                                + ",".join(COLUMNS[:6]) + ")")
    names = [name.strip().lower() for name in header]
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise LegacyImportError(f"the header has no {' or '.join(missing)} column "
                                f"(expected {','.join(COLUMNS[:6])}[,salt][,scheme])")
    positions = [(name, names.index(name)) for name in COLUMNS if name in names]
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        yield reader.line_num, {
            name: cells[index].strip() if index < len(cells) else ""
            for name, index in positions
        }


# -- importing -------------------------------------------------------------------------------


def import_legacy_accounts(
    portal: Portal, rows: Iterable[tuple[int, Mapping[str, str]]]
) -> LegacyImportReport:
    """Create or update `portal`'s legacy accounts from (line, row) pairs; committed."""
    report = LegacyImportReport()
    existing = _existing_accounts(portal)
    seen: dict[str, int] = {}
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    now = utcnow()
    for line, row in rows:
        try:
            values = _check_row(row, line, seen, report)
        except _RowProblem as problem:
            report.errors.append(RowIssue(line, str(problem)))
            continue
        key = values["username_key"]
        seen[key] = line
        if values["password_hash"] is None:
            report.without_password += 1
        current = existing.get(key)
        if current is None:
            inserts.append({**values, "portal_id": portal.id, "imported_at": now,
                            "updated_at": now})
            report.created += 1
        elif current["migrated_at"] is not None:
            report.already_migrated += 1
        else:
            changes = {name: values[name] for name in PROFILE_FIELDS
                       if current[name] != values[name]}
            if current["password_source"] != values["password_source"]:
                changes.update({name: values[name] for name in PASSWORD_FIELDS})
            if changes:
                updates.append({"id": current["id"], **changes, "updated_at": now})
                report.updated += 1
            else:
                report.unchanged += 1
        if len(inserts) >= BATCH:
            _write(inserts, updates)
    _write(inserts, updates, final=True)
    db.session.commit()
    return report


def _existing_accounts(portal: Portal) -> dict[str, dict[str, Any]]:
    columns = (LegacyAccount.id, LegacyAccount.username_key, LegacyAccount.migrated_at,
               LegacyAccount.password_source,
               *(getattr(LegacyAccount, name) for name in PROFILE_FIELDS))
    result = db.session.execute(
        db.select(*columns).where(LegacyAccount.portal_id == portal.id)
    )
    return {row.username_key: row._asdict() for row in result}


def _write(inserts: list[dict[str, Any]], updates: list[dict[str, Any]],
           final: bool = False) -> None:
    """Flush pending rows with one bulk statement each (executemany)."""
    if inserts:
        db.session.execute(insert(LegacyAccount), inserts)
        inserts.clear()
    if updates and (final or len(updates) >= BATCH):
        # ORM bulk UPDATE by primary key: rows may change different columns.
        for changes in _group_by_columns(updates):
            db.session.execute(update(LegacyAccount), changes)
        updates.clear()


def _group_by_columns(updates: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for changes in updates:
        groups.setdefault(tuple(sorted(changes)), []).append(changes)
    return list(groups.values())


def _check_row(row: Mapping[str, str], line: int, seen: dict[str, int],
               report: LegacyImportReport) -> dict[str, Any]:
    """The stored values of a row, or _RowProblem saying what is wrong with it."""
    row = {name: str(value or "").strip() for name, value in row.items()}
    for name, limit in LIMITS.items():
        value = row.get(name) or ""
        if len(value) > limit:
            raise _RowProblem(f"{name}: longer than {limit} characters")
        if value and not value.isprintable():
            raise _RowProblem(f"{name}: contains control characters")
    username = row.get("legacy_username") or ""
    if not username:
        raise _RowProblem("legacy_username: missing")
    key = username_key(username)
    if key in seen:
        raise _RowProblem(f"legacy_username: {username!r} already appears on row {seen[key]} "
                          "(usernames are case-insensitive)")
    email = normalise_email(row.get("email") or "") or None
    if email is not None and not EMAIL_PATTERN.match(email):
        report.warnings.append(RowIssue(line, f"email: not a valid address: {email!r}; "
                                              "imported without it"))
        email = None
    password_hash = row.get("password_hash") or None
    salt = row.get("salt") or None
    scheme = None
    if password_hash is None:
        if salt is not None:
            raise _RowProblem("salt: given without a password_hash")
    else:
        try:
            scheme = detect_scheme(password_hash, salt, row.get("scheme"))
        except LegacyHashError as exc:
            raise _RowProblem(str(exc)) from None
    return {
        "legacy_username": username,
        "username_key": key,
        "email": email,
        "name": row.get("name") or None,
        "phone": row.get("phone") or None,
        "contact_id": row.get("contact_id") or None,
        "password_hash": password_hash,
        "password_scheme": scheme,
        "salt": salt,
        "password_source": _source(scheme, password_hash, salt),
    }


def _source(scheme: str | None, password_hash: str | None, salt: str | None) -> str | None:
    """A fingerprint of the password as imported (never the hash itself twice)."""
    if password_hash is None:
        return None
    text = "\x00".join((scheme or "", password_hash, salt or ""))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
