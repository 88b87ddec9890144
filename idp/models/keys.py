"""Signing keys for ID and logout tokens; private halves encrypted at rest."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from idp.clock import utcnow
from idp.db import db


class SigningKey(db.Model):  # type: ignore[name-defined]
    __tablename__ = "signing_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    alg: Mapped[str] = mapped_column(String(10))
    private_jwk_encrypted: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set when a newer key of the same algorithm takes over signing; the key stays
    # published until every token it signed has expired.
    retired_at: Mapped[datetime | None]
