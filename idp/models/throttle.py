"""Failure counters for credential checks, shared by every process (database-backed)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import db


class ThrottleCounter(db.Model):  # type: ignore[name-defined]
    __tablename__ = "throttle_counters"

    # SHA-256 of "<scope>:<kind>:<value>", e.g. of "password:account:pat@example.org".
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[datetime]
