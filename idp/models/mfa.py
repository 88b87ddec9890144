"""Second factors: enrolled methods, emailed/texted codes, recovery codes, trusted browsers.

A method's kind is one of `idp.policy.MFA_METHODS` ("totp", "email", "sms", "webauthn").
One table holds every kind: the columns are what all kinds share, and what only one kind
needs goes in `data` (public) or `secret_encrypted` (encrypted with the Encryptor). A
WebAuthn credential fits as a row with `kind="webauthn"`, its credential id, public key and
transports in `data`, and its signature counter in `counter`; the challenges of WebAuthn
ceremonies are rows of `WebAuthnChallenge` (single use, bound to a sign-in or a browser).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.clock import utcnow
from idp.db import db
from idp.models.user import User


class MfaMethod(db.Model):  # type: ignore[name-defined]
    """One second factor of a person; `confirmed_at` is None while it is being set up."""

    __tablename__ = "mfa_methods"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    # The person's own name for it (passkeys: "Work laptop"); None shows the kind's name.
    label: Mapped[str | None] = mapped_column(String(200))
    # Where codes go: an email address or an E.164 phone number (email and sms kinds).
    destination: Mapped[str | None] = mapped_column(String(320))
    # The TOTP seed, encrypted at rest (Fernet, `security.encryption_keys`); never plaintext.
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    # Kind-specific public data (WebAuthn: credential id, public key, transports, aaguid).
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # A value that must only grow: TOTP's last accepted time step (a code is never accepted
    # twice), WebAuthn's signature counter (a cloned authenticator shows up).
    counter: Mapped[int | None]
    # Consecutive wrong codes, for throttling guesses (NIST SP 800-63B 5.2.2).
    failed_attempts: Mapped[int] = mapped_column(default=0)
    last_failed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()

    @property
    def is_confirmed(self) -> bool:
        return self.confirmed_at is not None


class MfaCode(db.Model):  # type: ignore[name-defined]
    """A 6-digit code sent by email or text message: single use, short-lived, stored hashed."""

    __tablename__ = "mfa_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    method_id: Mapped[int] = mapped_column(ForeignKey("mfa_methods.id"), index=True)
    # The address the code went to: entering the code proves this address, even when the
    # person corrected it while setting the method up.
    destination: Mapped[str] = mapped_column(String(320))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    # Tries so far (each is counted before it is checked): at most 5 per code.
    attempts: Mapped[int] = mapped_column(default=0)

    method: Mapped[MfaMethod] = relationship()


class RecoveryCode(db.Model):  # type: ignore[name-defined]
    """One of a person's single-use recovery codes (NIST "look-up secret"), stored hashed."""

    __tablename__ = "mfa_recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None]


class TrustedDevice(db.Model):  # type: ignore[name-defined]
    """A browser that passed MFA and was trusted by a person for a period.

    The browser keeps a random device id in an HttpOnly cookie; only its hash is stored.
    One browser may be trusted by several people (one row each).
    """

    __tablename__ = "mfa_trusted_devices"
    __table_args__ = (UniqueConstraint("device_hash", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    device_hash: Mapped[str] = mapped_column(String(64), index=True)
    # What the browser said it was, to list it on the account page.
    user_agent: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    def is_current(self) -> bool:
        return self.revoked_at is None and utcnow() < self.expires_at


class MfaSkip(db.Model):  # type: ignore[name-defined]
    """A person chose "Skip for now" at an offered enrolment (counted against the policy)."""

    __tablename__ = "mfa_skips"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    portal_id: Mapped[int | None] = mapped_column(ForeignKey("portals.id"))
    # The sign-in it was skipped in: not offered again within it. Not a foreign key, so
    # finished transactions can be purged without losing the count.
    login_transaction_id: Mapped[str] = mapped_column(String(64), index=True)
    skipped_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebAuthnChallenge(db.Model):  # type: ignore[name-defined]
    """The random challenge of one WebAuthn ceremony: single use, short-lived, bound.

    A ceremony of a sign-in is bound to its login transaction (itself bound to the browser);
    one of the account page to the browser and the person. The browser returns the
    challenge inside the signed clientDataJSON, which is how the row is found again.
    """

    __tablename__ = "webauthn_challenges"

    id: Mapped[int] = mapped_column(primary_key=True)
    # base64url, as it appears in clientDataJSON
    challenge: Mapped[str] = mapped_column(String(128), unique=True)
    # "register", "second_factor" or "sign_in" (a passkey instead of the password)
    purpose: Mapped[str] = mapped_column(String(20))
    login_transaction_id: Mapped[str | None] = mapped_column(String(64), index=True)
    browser_id: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
