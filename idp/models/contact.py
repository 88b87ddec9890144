"""A record of a portal's own directory; self-registration matches against it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.clock import utcnow
from idp.db import db
from idp.models.portal import Portal
from idp.models.user import User


class Contact(db.Model):  # type: ignore[name-defined]
    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("portal_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id"), index=True)
    # The portal's own id for this person: released as the `contact_id` claim.
    external_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    phone: Mapped[str | None] = mapped_column(String(40))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    # Released as `preferred_username` at this portal; default: email local part + id.
    preferred_username: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    portal: Mapped[Portal] = relationship()
    user: Mapped[User | None] = relationship()
