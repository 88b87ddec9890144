"""The one source of "now", so tests can move time (see the `clock` fixture)."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """Wall-clock time in UTC; tests replace `offset` to travel in time."""

    offset: float = 0.0

    def now(self) -> datetime:
        """Naive UTC datetime, as stored in the database."""
        return datetime.fromtimestamp(self.timestamp(), UTC).replace(tzinfo=None)

    def timestamp(self) -> float:
        return time.time() + self.offset


clock = Clock()


def utcnow() -> datetime:
    """Shorthand for `clock.now()`."""
    return clock.now()


def to_epoch(moment: datetime) -> int:
    """Seconds since the epoch of a naive UTC datetime (JWT NumericDate)."""
    return int(moment.replace(tzinfo=UTC).timestamp())
