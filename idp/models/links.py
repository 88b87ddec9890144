"""Single-use emailed links (reset, invitation, email verification); stored hashed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.clock import utcnow
from idp.db import db
from idp.models.portal import Portal
from idp.models.user import User


class ActionLink(db.Model):  # type: ignore[name-defined]
    __tablename__ = "action_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(20))  # reset | invitation | register
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    portal_id: Mapped[int | None] = mapped_column(ForeignKey("portals.id"))
    # The authorization request to resume after the link's action (back to the portal).
    return_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Purpose-specific facts (e.g. the name typed at registration).
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    opened_at: Mapped[datetime | None]
    used_at: Mapped[datetime | None]
    # A newer link for the same person and purpose, or a password change, voids this one.
    superseded_at: Mapped[datetime | None]

    user: Mapped[User | None] = relationship()
    portal: Mapped[Portal | None] = relationship()

    @property
    def state(self) -> str:
        """usable | used | superseded | expired"""
        if self.used_at is not None:
            return "used"
        if self.superseded_at is not None:
            return "superseded"
        if utcnow() >= self.expires_at:
            return "expired"
        return "usable"
