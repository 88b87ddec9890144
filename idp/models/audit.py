"""The audit log: one row per security event, append-only for the application."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.clock import utcnow
from idp.db import db


class AuditEvent(db.Model):  # type: ignore[name-defined]
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_subject", "subject", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # What happened, dotted: "signin.success", "password.reset", "client.created", ...
    kind: Mapped[str] = mapped_column(String(60), index=True)
    # Who did it: "user:<sub>", "admin:<email>", "client:<client_id>", "cli", "system".
    actor: Mapped[str] = mapped_column(String(200))
    # Whom or what it concerns: an email, a sub, a client id.
    subject: Mapped[str | None] = mapped_column(String(320))
    portal: Mapped[str | None] = mapped_column(String(64))
    client_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
