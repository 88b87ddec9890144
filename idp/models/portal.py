"""The organisation behind one or more clients; carries branding and the login policy."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.clock import utcnow
from idp.db import db
from idp.policy import LoginPolicy


class Portal(db.Model):  # type: ignore[name-defined]
    __tablename__ = "portals"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Branding shown on the hosted pages for this portal's clients.
    logo_url: Mapped[str | None] = mapped_column(String(2000))
    primary_color: Mapped[str | None] = mapped_column(String(7))
    # Where a person lands after accepting an invitation or resetting a password
    # outside a sign-in (the portal's own page, which then signs them in by SSO).
    home_url: Mapped[str | None] = mapped_column(String(2000))
    policy_data: Mapped[dict[str, Any]] = mapped_column("policy", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def policy(self) -> LoginPolicy:
        return LoginPolicy.from_stored(self.policy_data)

    @policy.setter
    def policy(self, value: LoginPolicy) -> None:
        self.policy_data = value.to_stored()
