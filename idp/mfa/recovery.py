"""Recovery codes: 10 single-use codes, shown once, stored hashed, regenerable.

Each has 80 random bits (16 characters of a 32-letter alphabet without look-alikes), so
an unkeyed SHA-256 is safe for storage (idp.security.secrets) and survives key rotation.
"""

from __future__ import annotations

import secrets

from sqlalchemy import update

from idp.clock import utcnow
from idp.db import db
from idp.models import RecoveryCode, User
from idp.security import throttle
from idp.security.secrets import hash_secret

COUNT = 10
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no i, l, o, 0, 1
LENGTH = 16


def _new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return "-".join(raw[i:i + 4] for i in range(0, LENGTH, 4))


def normalise(code: str) -> str:
    """What the person typed, without spaces, dashes or capitals."""
    return "".join(c for c in code.lower() if c.isalnum())


def generate_recovery_codes(user: User) -> list[str]:
    """Replace the person's recovery codes with 10 new ones; returns them (shown once)."""
    db.session.execute(db.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [_new_code() for _ in range(COUNT)]
    for code in codes:
        db.session.add(RecoveryCode(user_id=user.id, code_hash=hash_secret(normalise(code))))
    db.session.commit()
    return codes


def remaining_recovery_codes(user: User) -> int:
    count = db.session.scalar(
        db.select(db.func.count(RecoveryCode.id)).where(
            RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
        )
    )
    return int(count or 0)


def recovery_key(user: User) -> throttle.Key:
    """Guesses of a person's recovery codes are throttled like passwords (per person)."""
    return throttle.account_key("recovery", user.sub)


def recovery_verdict(user: User) -> throttle.Verdict:
    """May the person try a recovery code now?"""
    return throttle.check(recovery_key(user))


def use_recovery_code(user: User, code: str) -> bool:
    """True (and the code is spent) when `code` is one of the person's unused codes.

    Always False while guessing is throttled (`recovery_verdict`); a wrong code counts.
    """
    if not recovery_verdict(user).allowed:
        return False
    value = normalise(code)
    if len(value) != LENGTH:
        throttle.record_failure(recovery_key(user))
        return False
    # A conditional UPDATE: the code works once even when two requests race.
    spent = db.session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.code_hash == hash_secret(value),
               RecoveryCode.used_at.is_(None))
        .values(used_at=utcnow())
    )
    db.session.commit()
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        throttle.record_failure(recovery_key(user))
        return False
    throttle.record_success(recovery_key(user))
    return True
