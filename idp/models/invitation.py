"""A staff invitation of one person to a portal, with a status staff can act on."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.clock import utcnow
from idp.db import db
from idp.models.links import ActionLink
from idp.models.portal import Portal


class Invitation(db.Model):  # type: ignore[name-defined]
    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id"), index=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    contact_external_id: Mapped[str | None] = mapped_column(String(100))
    message: Mapped[str] = mapped_column(Text)
    link_id: Mapped[int | None] = mapped_column(ForeignKey("action_links.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
    opened_at: Mapped[datetime | None]
    accepted_at: Mapped[datetime | None]
    resent_count: Mapped[int] = mapped_column(default=0)

    portal: Mapped[Portal] = relationship()
    link: Mapped[ActionLink | None] = relationship()

    @property
    def status(self) -> str:
        """accepted | expired | opened | resent | sent (what staff see and act on)."""
        if self.accepted_at is not None:
            return "accepted"
        if self.link is not None and self.link.state in ("expired", "superseded"):
            return "expired"
        if self.opened_at is not None:
            return "opened"
        if self.resent_count:
            return "resent"
        return "sent"
