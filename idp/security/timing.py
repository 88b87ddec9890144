"""Answers that take as long for an unknown account as for a known one (no enumeration)."""

from __future__ import annotations

import time

# Above what a request for a link costs (a link and an email queued, a commit), also on a
# busy node; well below what a person notices after pressing a button. Legacy sign-in
# failures use the same floor (idp.legacy.signin).
ANSWER_FLOOR_SECONDS = 0.25


def answer_no_sooner(started: float, seconds: float = ANSWER_FLOOR_SECONDS) -> None:
    """Sleep until `seconds` after `started`, a `time.perf_counter()` reading."""
    time.sleep(max(0.0, seconds - (time.perf_counter() - started)))
