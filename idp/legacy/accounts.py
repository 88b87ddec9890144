"""Legacy accounts and the people they become: lookups, placeholders, linking, status.

A legacy account signs in as a user. Before it is migrated that user is a *placeholder*:
a `User` row made at the account's first sign-in, whose `email` column holds
`legacy:<portal id>:<username>` (never an address: every form and command that takes an
email refuses it, and it has no password of its own). Migration turns the account into a
real person's account in one of two ways:

- `migrated`: the confirmed email had no account; the placeholder itself becomes the
  account (email set and verified, new password), so the `sub` portals saw before the
  migration stays the same;
- `linked`: the confirmed email already had an account (the same person from another
  agent or portal); the legacy account joins it, the placeholder is disabled and its
  contacts move over. That `sub` is the existing account's; portals map the old one by
  the `legacy_usernames` claim (and `contact_id`), see `legacy_claims`.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import date
from typing import IO, Any

from sqlalchemy import func

from idp import audit, contacts
from idp.clock import utcnow
from idp.db import db
from idp.login.transaction import rebind_transaction
from idp.models import (
    Client,
    Contact,
    LegacyAccount,
    LegacyMigration,
    LoginTransaction,
    Portal,
    User,
)
from idp.models.legacy import LINKED, MIGRATED
from idp.models.user import normalise_email

log = logging.getLogger(__name__)

PLACEHOLDER_PREFIX = "legacy:"


def username_key(username: str) -> str:
    """Usernames compare case-insensitively, without surrounding space."""
    return username.strip().casefold()


def placeholder_email(account: LegacyAccount) -> str:
    """The `email` column of an account's placeholder user: unique, and not an address."""
    return f"{PLACEHOLDER_PREFIX}{account.portal_id}:{account.username_key}"


def is_placeholder(user: User | None) -> bool:
    """True for the stand-in user of a legacy account that has not migrated yet."""
    return user is not None and is_placeholder_email(user.email)


def is_placeholder_email(email: str) -> bool:
    """True for the `email` column of such a stand-in (`placeholder_email`)."""
    return email.startswith(PLACEHOLDER_PREFIX)


# -- lookups -----------------------------------------------------------------------------


def accepts_legacy_usernames(portal: Portal | None) -> bool:
    """True when `portal`'s sign-in takes legacy usernames (it has some, not retired)."""
    if portal is None or portal.policy.legacy_usernames_retired:
        return False
    return db.session.execute(
        db.select(LegacyAccount.id)
        .where(LegacyAccount.portal_id == portal.id, LegacyAccount.retired_at.is_(None))
        .limit(1)
    ).first() is not None


def find_account(portal: Portal, username: str) -> LegacyAccount | None:
    """The usable (not retired) legacy account of `portal` with `username`."""
    key = username_key(username)
    if not key or len(key) > 200 or portal.policy.legacy_usernames_retired:
        return None
    return db.session.execute(
        db.select(LegacyAccount).where(
            LegacyAccount.portal_id == portal.id, LegacyAccount.username_key == key,
            LegacyAccount.retired_at.is_(None))
    ).scalar_one_or_none()


def pending_accounts_with_email(portal: Portal, email: str) -> list[LegacyAccount]:
    """`portal`'s legacy accounts not yet migrated whose email on file is `email`."""
    if not email:
        return []
    return list(db.session.execute(
        db.select(LegacyAccount).where(
            LegacyAccount.portal_id == portal.id, LegacyAccount.email == normalise_email(email),
            LegacyAccount.migrated_at.is_(None), LegacyAccount.retired_at.is_(None))
        .order_by(LegacyAccount.id)
    ).scalars())


def account_of_placeholder(user: User | None) -> LegacyAccount | None:
    """The unmigrated legacy account `user` stands in for, if `user` is a placeholder."""
    if user is None or not is_placeholder(user):
        return None
    return db.session.execute(
        db.select(LegacyAccount).where(LegacyAccount.user_id == user.id,
                                       LegacyAccount.migrated_at.is_(None))
    ).scalars().first()


def migration_due(account: LegacyAccount, client: Client | None = None) -> bool:
    """True when `account` must move to an email now (rather than sign in as it is).

    On or after its portal's `email_username_migration_from` (at once when unset), once the
    portal retired its usernames, or when another portal's client is asking (a placeholder
    is known only at its own portal).
    """
    policy = account.portal.policy
    if policy.legacy_usernames_retired or account.retired_at is not None:
        return True
    if client is not None and client.portal_id != account.portal_id:
        return True
    start: date | None = policy.email_username_migration_from
    return start is None or utcnow().date() >= start


def user_by_email(email: str) -> User | None:
    return db.session.execute(
        db.select(User).filter_by(email=normalise_email(email))
    ).scalar_one_or_none()


# -- placeholders and linking ------------------------------------------------------------


def ensure_placeholder(account: LegacyAccount) -> User:
    """The user `account` signs in as before its migration (made at its first sign-in)."""
    if account.user is not None and account.migrated_at is None:
        return account.user
    user = User(email=placeholder_email(account), name=account.name, phone=account.phone,
                email_verified=False)
    db.session.add(user)
    db.session.flush()
    account.user_id, account.user = user.id, user
    attach_contact(account, user)
    return user


def attach_contact(account: LegacyAccount, user: User) -> Contact | None:
    """The portal's contact of `account` linked to `user`, made when the directory lacks it.

    Its `preferred_username` becomes the legacy username (what the portal knew the person
    by), unless the portal set one. A contact linked to another real person stays theirs.
    """
    if not account.contact_id:
        return None
    contact = db.session.execute(
        db.select(Contact).filter_by(portal_id=account.portal_id, external_id=account.contact_id)
    ).scalars().first()
    if contact is None:
        contact = Contact(portal_id=account.portal_id, external_id=account.contact_id,
                          name=account.name, email=account.email, phone=account.phone)
        db.session.add(contact)
    elif contact.user_id is not None and contact.user_id != user.id \
            and not is_placeholder(contact.user):
        log.warning("contact %s of portal %s is linked to another user; left as it is",
                    account.contact_id, account.portal_id)
        return contact
    if not contact.preferred_username:
        contact.preferred_username = account.legacy_username
    return contacts.link_contact(contact, user)


def link_account(account: LegacyAccount, user: User, outcome: str) -> None:
    """Record `account` as migrated into `user`; its placeholder (if another user) retires."""
    previous = account.user
    account.user_id, account.user = user.id, user
    account.migrated_at = utcnow()
    account.outcome = outcome
    # "legacy.migrated" (the account became a person's) or "legacy.linked" (joined one).
    audit.record(f"legacy.{outcome}", actor=f"user:{user.sub}", subject=user.email,
                 commit=False, portal=account.portal.slug,
                 legacy_username=account.legacy_username)
    attach_contact(account, user)
    if previous is not None and previous.id != user.id and is_placeholder(previous):
        retire_placeholder(previous, user)


def retire_placeholder(placeholder: User, user: User) -> None:
    """A placeholder whose account joined `user`: contacts move, sessions end, disabled."""
    from idp.login.sessions import end_sessions_of
    from idp.oidc import tokens

    for contact in db.session.execute(
        db.select(Contact).filter_by(user_id=placeholder.id)
    ).scalars():
        contacts.link_contact(contact, user)
    placeholder.disabled_at = utcnow()
    end_sessions_of(placeholder)
    tokens.revoke_user_tokens(placeholder.id)


def link_accounts_with_email(portal: Portal, email: str, user: User,
                             exclude: LegacyAccount | None = None) -> list[LegacyAccount]:
    """Link every pending account of `portal` whose email on file is `email` into `user`.

    Called once the person proved they own `email` (a code, or a link sent there): one
    person, one account. Accounts elsewhere link when used at their own portal.
    """
    linked = []
    for account in pending_accounts_with_email(portal, email):
        if exclude is not None and account.id == exclude.id:
            continue
        link_account(account, user, LINKED)
        linked.append(account)
    return linked


def finish_migration(migration: LegacyMigration, tx: LoginTransaction,
                     password_hash: str | None) -> User:
    """Migrate the transaction's legacy account into the account of its confirmed email.

    `password_hash` is the new password's (required when that email has no account or
    one without a password). The transaction then signs in as that account; committed.
    """
    from idp.account.completion import set_new_password

    account = migration.account
    email = normalise_email(migration.email or "")
    assert email and migration.verified_at is not None
    placeholder = account.user if is_placeholder(account.user) else None
    target = user_by_email(email)
    if target is None:
        user = placeholder or User(email=email, name=account.name, phone=account.phone)
        user.email = email
        if user.id is None:
            db.session.add(user)
            db.session.flush()
        outcome = MIGRATED
    else:
        user, outcome = target, LINKED
    user.email_verified = True  # proven just now, by a code sent there or its password
    if not user.name and account.name:
        user.name = account.name
    if not user.phone and account.phone:
        user.phone = account.phone
    link_account(account, user, outcome)
    link_accounts_with_email(account.portal, email, user, exclude=account)
    tx.user_id, tx.user = user.id, user
    if tx.authenticated_at is None:
        tx.authenticated_at = utcnow()
        rebind_transaction(tx)  # session fixation: in the authentication's own commit
    tx.amr = list(tx.amr) or ["pwd"]
    if password_hash is not None:
        # Ends the person's other sessions and links, like any password change.
        set_new_password(user, password_hash)
    db.session.commit()
    return user


def link_after_mailbox_proof(portal: Portal | None, email: str, user: User) -> None:
    """After a reset or invitation link of `portal` set `user`'s password: that mailbox is
    proven, so `portal`'s pending accounts with that email on file join `user`.

    A placeholder that was given the link (its account's email on file) becomes the
    person's account here, keeping its `sub`.
    """
    if portal is None:
        return
    if is_placeholder(user):
        if user_by_email(email) is not None:
            # The email got an account between the link and now: leave both as they are.
            log.warning("legacy placeholder %s: %s has an account now; not migrated",
                        user.id, email)
            return
        own = account_of_placeholder(user)
        user.email = normalise_email(email)
        user.email_verified = True
        if own is not None:
            _forget_legacy_password(own)
            link_account(own, user, MIGRATED)
    for account in pending_accounts_with_email(portal, email):
        _forget_legacy_password(account)
        link_account(account, user, LINKED)


def _forget_legacy_password(account: LegacyAccount) -> None:
    """Migrated without its password: the old hash has no use left, so it goes."""
    account.password_hash = account.password_scheme = account.salt = None


# -- claims ------------------------------------------------------------------------------


def legacy_usernames_of(user: User, portal: Portal) -> list[str]:
    """The legacy usernames of `portal` that sign in as `user`, oldest first."""
    return list(db.session.execute(
        db.select(LegacyAccount.legacy_username)
        .where(LegacyAccount.user_id == user.id, LegacyAccount.portal_id == portal.id)
        .order_by(LegacyAccount.id)
    ).scalars())


def legacy_claims(user: User, portal: Portal | None) -> dict[str, Any]:
    """`legacy_usernames` (profile) for `portal`: how it maps old accounts to this `sub`;
    also a `preferred_username` (the first legacy username) for when no contact gives one."""
    if portal is None:
        return {}
    usernames = legacy_usernames_of(user, portal)
    if not usernames:
        return {}
    return {"legacy_usernames": usernames, "preferred_username": usernames[0]}


# -- status, export, retirement ----------------------------------------------------------


@dataclass(frozen=True)
class LegacyStatus:
    """Per-portal counts for staff (the admin view and `idp users legacy-status`)."""

    portal: str
    usernames_retired: bool
    total: int
    migrated: int  # moved to an email (including `linked`)
    linked: int  # joined an account that existed already
    pending: int  # may still sign in with the username and migrate
    retired: int  # never migrated, username retired
    without_password: int  # pending with no password: to be invited

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def legacy_status(portal: Portal) -> LegacyStatus:
    """Counts of `portal`'s legacy accounts by where they are in the migration."""
    columns = (LegacyAccount.migrated_at.is_not(None), LegacyAccount.outcome,
               LegacyAccount.retired_at.is_not(None), LegacyAccount.password_hash.is_(None))
    rows = db.session.execute(
        db.select(*columns, func.count()).where(LegacyAccount.portal_id == portal.id)
        .group_by(*columns)
    ).all()
    retired_portal = portal.policy.legacy_usernames_retired
    counts = {"total": 0, "migrated": 0, "linked": 0, "pending": 0, "retired": 0,
              "without_password": 0}
    for migrated, outcome, retired, no_password, number in rows:
        counts["total"] += number
        if migrated:
            counts["migrated"] += number
            counts["linked"] += number if outcome == LINKED else 0
        elif retired or retired_portal:
            counts["retired"] += number
        else:
            counts["pending"] += number
            counts["without_password"] += number if no_password else 0
    return LegacyStatus(portal=portal.slug, usernames_retired=retired_portal, **counts)


EXPORT_COLUMNS = ("email", "name", "contact_id", "legacy_username", "phone", "has_password")


def pending_for_export(portal: Portal) -> Iterable[LegacyAccount]:
    """Accounts that may still migrate, by username (the reminder mailing's list)."""
    if portal.policy.legacy_usernames_retired:
        return []
    return db.session.execute(
        db.select(LegacyAccount).where(
            LegacyAccount.portal_id == portal.id, LegacyAccount.migrated_at.is_(None),
            LegacyAccount.retired_at.is_(None))
        .order_by(LegacyAccount.username_key)
        .execution_options(yield_per=2000)
    ).scalars()


def export_pending(portal: Portal, out: IO[str]) -> int:
    """Write the pending accounts as CSV for `idp invitations bulk`; returns the row count.

    The bulk invitation's link, once used, links the accounts with that email on file
    (`link_after_mailbox_proof`); its template may use `{{ legacy_username }}`.
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for row in pending_rows(portal):
        writer.writerow(row)
        count += 1
    return count


def pending_rows(portal: Portal) -> Iterator[list[str]]:
    """The pending accounts as rows of EXPORT_COLUMNS (the CLI's file, the console's)."""
    for account in pending_for_export(portal):
        yield [account.email or "", account.name or "", account.contact_id or "",
               account.legacy_username, account.phone or "",
               "yes" if account.password_hash else "no"]


def retire_accounts(portal: Portal, usernames: Iterable[str]) -> int:
    """Retire single usernames of `portal` (the portal-wide switch is its login policy's
    `legacy_usernames_retired`); returns how many were retired now."""
    keys = {username_key(u) for u in usernames if u.strip()}
    count = 0
    for account in db.session.execute(
        db.select(LegacyAccount).where(LegacyAccount.portal_id == portal.id,
                                       LegacyAccount.username_key.in_(keys),
                                       LegacyAccount.retired_at.is_(None))
    ).scalars():
        account.retired_at = utcnow()
        count += 1
    db.session.commit()
    return count
