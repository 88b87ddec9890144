"""IdP browser sessions and login transactions: server-side state, opaque ids in cookies."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.clock import utcnow
from idp.db import db
from idp.models.user import User
from idp.security.secrets import generate_secret


class IdpSession(db.Model):  # type: ignore[name-defined]
    """A signed-in browser. `id` is also the `sid` claim of ID and logout tokens."""

    __tablename__ = "idp_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=generate_secret)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    auth_time: Mapped[datetime]
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    acr: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Absolute end (the portal policy's session maximum, or its keep-me-signed-in days).
    expires_at: Mapped[datetime]
    # Ends after this many idle minutes; None for "Keep me signed in" sessions.
    idle_timeout_minutes: Mapped[int | None]
    persistent: Mapped[bool] = mapped_column(default=False)
    ended_at: Mapped[datetime | None]
    # The browser's "Trust this browser" at its last sign-in with MFA: while that trust is
    # current, the refresh tokens of this session outlive it (idp.oidc.tokens).
    trusted_device_id: Mapped[int | None] = mapped_column(
        ForeignKey("mfa_trusted_devices.id"), index=True
    )

    user: Mapped[User] = relationship()

    def is_current(self) -> bool:
        now = utcnow()
        if self.ended_at is not None or now >= self.expires_at or not self.user.is_active:
            return False
        if self.idle_timeout_minutes is not None:
            return now < self.last_seen_at + timedelta(minutes=self.idle_timeout_minutes)
        return True


class SessionClient(db.Model):  # type: ignore[name-defined]
    """A client that received tokens within a session (for back-channel logout)."""

    __tablename__ = "session_clients"

    session_id: Mapped[str] = mapped_column(ForeignKey("idp_sessions.id"), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginTransaction(db.Model):  # type: ignore[name-defined]
    """One sign-in in progress: the validated authorization request and what is done so far.

    The next step is never stored; it is recomputed from these facts on every request.
    """

    __tablename__ = "login_transactions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=generate_secret)
    # Binds the transaction to the browser that started it (a value in its session cookie).
    browser_id: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Authentication performed within this transaction (methods as RFC 8176 amr values).
    authenticated_at: Mapped[datetime | None]
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    consented_scope: Mapped[str | None] = mapped_column(String(1000))
    # "Keep me signed in" was ticked at the password step.
    keep_signed_in: Mapped[bool] = mapped_column(default=False)
    # The IdP session this transaction's authentication established, once it did.
    session_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]

    user: Mapped[User | None] = relationship()
