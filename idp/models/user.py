"""A person: one verified email is the username, global across portals."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from idp.clock import utcnow
from idp.db import db
from idp.security.secrets import generate_secret


def normalise_email(email: str) -> str:
    """Emails compare case-insensitively and without surrounding space."""
    return email.strip().lower()


class User(db.Model):  # type: ignore[name-defined]
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # `sub` is random and never the email, so it survives an email change (OIDC Core 5.7).
    sub: Mapped[str] = mapped_column(String(64), unique=True, default=lambda: generate_secret(16))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    email_verified: Mapped[bool] = mapped_column(default=False)
    name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(40))
    phone_verified: Mapped[bool] = mapped_column(default=False)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    password_changed_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def is_active(self) -> bool:
        return self.disabled_at is None

    def get_user_id(self) -> int:
        """authlib's hook for the resource owner id."""
        return self.id

    def __repr__(self) -> str:
        return f"<User {self.id} {self.sub}>"
