"""Brute-force throttling of every credential check, Keycloak-style.

Failures are counted per key (an account, an IP address, a client); after a few free
failures each further attempt must wait, the wait doubling up to a maximum, and a success
resets the count. Nothing is locked for good: waits end by themselves, and counters
forget after a quiet period. An account that reaches 100 consecutive failures (NIST
SP 800-63B 5.2.2) refuses password attempts until its owner proves their email by a
reset, which an attacker cannot do and the owner always can.

Counters live in the database so all processes and nodes share them, or in Redis when
`security.throttle_redis_url` is set (idp.security.throttle_redis).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from flask import current_app
from sqlalchemy import Select, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from idp.clock import utcnow
from idp.db import db
from idp.models.throttle import ThrottleCounter
from idp.security.secrets import hash_secret

if TYPE_CHECKING:
    from idp.security.throttle_redis import RedisCounters

FORGET_AFTER = timedelta(hours=12)  # Keycloak's default failure reset time
MAX_CONSECUTIVE_FAILURES = 100


@dataclass(frozen=True)
class Rule:
    """`free` failures without waiting, then 2**k seconds, capped at `max_wait` seconds."""

    free: int
    max_wait: int = 900


ACCOUNT = Rule(free=5)
ADDRESS = Rule(free=20)
CLIENT = Rule(free=10)


@dataclass(frozen=True)
class Key:
    scope: str  # what is checked: "password", "mfa", "link", "client_secret", ...
    kind: str  # "account", "address" or "client"
    value: str
    rule: Rule

    @property
    def digest(self) -> str:
        return hash_secret(f"{self.scope}:{self.kind}:{self.value.lower()}")


@dataclass(frozen=True)
class Verdict:
    wait_seconds: int  # 0 when the attempt may go ahead
    locked: bool = False  # 100 consecutive failures on an account
    # Digests of the keys that have a counter: a success clears only those (no write when
    # there is nothing to clear, which is nearly always).
    counted: frozenset[str] = frozenset()

    @property
    def allowed(self) -> bool:
        return self.wait_seconds == 0 and not self.locked


def account_key(scope: str, account: str) -> Key:
    return Key(scope, "account", account.strip().lower(), ACCOUNT)


def address_key(scope: str, address: str | None) -> Key:
    return Key(scope, "address", address or "unknown", ADDRESS)


def client_key(scope: str, client_id: str) -> Key:
    return Key(scope, "client", client_id, CLIENT)


def _redis() -> RedisCounters | None:
    """The Redis counters when configured, else None (the database keeps them)."""
    url = current_app.extensions["idp"].settings.security.throttle_redis_url
    if not url:
        return None
    from idp.security.throttle_redis import counters_for

    return counters_for(url)


@functools.cache
def _counters_statement(count: int) -> Select[str, int, datetime]:
    """The counters of `count` keys, built once per count (building costs about as much as
    running here). Columns, not ORM objects; and fixed parameters, not an expanding IN,
    which SQLAlchemy renders anew on every execution."""
    return select(ThrottleCounter.key_hash, ThrottleCounter.failures,
                  ThrottleCounter.last_failure_at).where(
        ThrottleCounter.key_hash.in_([bindparam(f"d{n}") for n in range(count)]))


def check(*keys: Key) -> Verdict:
    """May an attempt go ahead now? The strictest key decides."""
    now = utcnow()
    digests = [k.digest for k in keys]
    redis = _redis()
    counters: dict[str, tuple[int, datetime]]
    if redis is not None:
        counters = redis.read(digests)
    else:
        counters = {
            row.key_hash: (row.failures, row.last_failure_at)
            for row in db.session.execute(_counters_statement(len(digests)),
                                          {f"d{n}": d for n, d in enumerate(digests)})
        }
    wait, locked = 0, False
    for key in keys:
        failures, last_failure_at = counters.get(key.digest, (0, now - FORGET_AFTER))
        if key.kind == "account" and failures >= MAX_CONSECUTIVE_FAILURES:
            locked = True  # never forgotten: only a success (a reset) clears it
        elif now - last_failure_at >= FORGET_AFTER:
            continue
        over = failures - key.rule.free
        if over >= 0:
            delay = timedelta(seconds=min(2 ** min(over, 20), key.rule.max_wait))
            remaining = (last_failure_at + delay - now).total_seconds()
            wait = max(wait, int(remaining + 0.999))
    return Verdict(wait_seconds=max(wait, 0), locked=locked, counted=frozenset(counters))


def record_failure(*keys: Key) -> None:
    """Count a failed attempt against every key (atomic increments, no read-modify-write)."""
    now = utcnow()
    redis = _redis()
    if redis is not None:
        redis.record_failure([k.digest for k in keys], now, FORGET_AFTER,
                             [_lock_at(k) for k in keys])
        db.session.commit()  # as the database version does: callers count on it
        return
    for key in keys:
        stale = ThrottleCounter.last_failure_at < now - FORGET_AFTER
        if _lock_at(key):
            stale = stale & (ThrottleCounter.failures < _lock_at(key))
        db.session.execute(
            update(ThrottleCounter).where(ThrottleCounter.key_hash == key.digest, stale)
            .values(failures=0)
        )
        result = db.session.execute(
            update(ThrottleCounter).where(ThrottleCounter.key_hash == key.digest)
            .values(failures=ThrottleCounter.failures + 1, last_failure_at=now)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            try:
                with db.session.begin_nested():  # a savepoint: only this insert may fail
                    db.session.add(ThrottleCounter(key_hash=key.digest, failures=1,
                                                   last_failure_at=now))
            except IntegrityError:  # another process inserted it first: count on its row
                db.session.execute(
                    update(ThrottleCounter).where(ThrottleCounter.key_hash == key.digest)
                    .values(failures=ThrottleCounter.failures + 1, last_failure_at=now)
                )
    db.session.commit()


def _lock_at(key: Key) -> int:
    """Failures after which `key` is locked, not forgotten (accounts only; 0: never)."""
    return MAX_CONSECUTIVE_FAILURES if key.kind == "account" else 0


def record_success(*keys: Key, verdict: Verdict | None = None) -> None:
    """A success resets the counters of these keys (an account after its password, ...).

    With the `verdict` of the check before the attempt, keys that had no counter then are
    skipped: a failure counted since, by a concurrent attempt, is kept (stricter, never
    looser), and the common case writes nothing.
    """
    if verdict is not None:
        keys = tuple(k for k in keys if k.digest in verdict.counted)
        if not keys:
            return
    redis = _redis()
    if redis is not None:
        redis.clear([k.digest for k in keys])
        db.session.commit()
        return
    db.session.execute(
        delete(ThrottleCounter).where(ThrottleCounter.key_hash.in_([k.digest for k in keys]))
    )
    db.session.commit()


def too_many_attempts(page: str, wait_seconds: int) -> Response:
    """A hosted page refused by throttling: 429 (RFC 6585 4), with Retry-After while the
    wait lasts (none for a lock that only a reset lifts), so tools see it as people do."""
    response = Response(page, status=429, mimetype="text/html")
    if wait_seconds > 0:
        response.headers["Retry-After"] = str(wait_seconds)
    return response


def wait_text(seconds: int) -> str:
    """"Try again in 2 minutes" for people."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = (seconds + 59) // 60
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
