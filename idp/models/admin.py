"""Who may use the admin console and API: a role granted to a user (portal_admin: per portal)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.clock import utcnow
from idp.db import db
from idp.models.portal import Portal
from idp.models.user import User


class AdminRole(db.Model):  # type: ignore[name-defined]
    __tablename__ = "admin_roles"
    __table_args__ = (UniqueConstraint("user_id", "role", "portal_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # admin | support | portal_admin (idp.admin.roles.ROLES)
    role: Mapped[str] = mapped_column(String(20))
    # Set for portal_admin only: the one portal the role covers.
    portal_id: Mapped[int | None] = mapped_column(ForeignKey("portals.id"))
    granted_by: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship()
    portal: Mapped[Portal | None] = relationship()
