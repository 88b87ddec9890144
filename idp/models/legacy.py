"""Legacy accounts: agent-assigned usernames and old password hashes, and their migration."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.clock import utcnow
from idp.db import db
from idp.models.portal import Portal
from idp.models.user import User

MIGRATED, LINKED = "migrated", "linked"


class LegacyAccount(db.Model):  # type: ignore[name-defined]
    """One username of a portal's previous system (DESIGN.md: legacy account).

    `user_id` is who the username signs in as: before migration, a placeholder user made at
    its first sign-in (`idp.legacy.accounts`); after, the person's real account.
    """

    __tablename__ = "legacy_accounts"
    __table_args__ = (
        UniqueConstraint("portal_id", "username_key"),
        Index("ix_legacy_accounts_portal_email", "portal_id", "email"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id"))
    # As imported (shown back to the person); `username_key` is its case-insensitive form.
    legacy_username: Mapped[str] = mapped_column(String(200))
    username_key: Mapped[str] = mapped_column(String(200))
    # The email the old system had: lower-cased, possibly empty or somebody else's.
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(40))
    # The portal's contact id for this person (its `contact_id` claim).
    contact_id: Mapped[str | None] = mapped_column(String(100))
    # The old hash until its first successful sign-in, then argon2id (scheme "argon2").
    # None: no password yet (the person is invited instead).
    password_hash: Mapped[str | None] = mapped_column(String(512))
    password_scheme: Mapped[str | None] = mapped_column(String(40))
    salt: Mapped[str | None] = mapped_column(String(255))
    # SHA-256 of the hash, salt and scheme as imported: re-importing the same file leaves
    # a re-hashed password alone; a new hash from the old system replaces it.
    password_source: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    migrated_at: Mapped[datetime | None]
    # migrated (a new account was made from it) | linked (joined an existing account)
    outcome: Mapped[str | None] = mapped_column(String(10))
    # A retired username no longer signs in (the portal's switch retires all of them).
    retired_at: Mapped[datetime | None]
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    portal: Mapped[Portal] = relationship()
    user: Mapped[User | None] = relationship()

    @property
    def is_pending(self) -> bool:
        return self.migrated_at is None and self.retired_at is None


class LegacyMigration(db.Model):  # type: ignore[name-defined]
    """Facts of one login transaction's migration: the email confirmed, and its proof."""

    __tablename__ = "legacy_migrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    tx_id: Mapped[str] = mapped_column(
        ForeignKey("login_transactions.id", ondelete="CASCADE"), unique=True
    )
    legacy_account_id: Mapped[int] = mapped_column(ForeignKey("legacy_accounts.id"))
    email: Mapped[str | None] = mapped_column(String(320))
    code_hash: Mapped[str | None] = mapped_column(String(64))
    code_expires_at: Mapped[datetime | None]
    codes_sent: Mapped[int] = mapped_column(default=0)
    failed_attempts: Mapped[int] = mapped_column(default=0)
    verified_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    account: Mapped[LegacyAccount] = relationship()
