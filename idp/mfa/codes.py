"""Codes by email and text message: 6 digits, valid 5 minutes, single use, 5 tries, hashed.

Only the newest code of a method works ("Resend code" replaces the previous one). A code is
stored as an HMAC under the app's secret key: six digits hashed without a key would fall to
a million guesses against a copied database.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import math
import re
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import update

from idp.clock import utcnow
from idp.db import db
from idp.mfa.methods import MfaError, record_failure, record_success, throttle_wait
from idp.models import MfaCode, MfaMethod
from idp.notify.outbox import queue_email, queue_sms

LIFETIME = timedelta(minutes=5)
MAX_TRIES = 5
RESEND_AFTER = timedelta(seconds=30)
# Text messages cost money and can be abused (SMS pumping): a ceiling per method and hour.
MAX_SENDS_PER_HOUR = 10
DIGITS = 6
PHONE = re.compile(r"^\+[1-9][0-9]{7,14}$")  # E.164
PHONE_SEPARATORS = re.compile(r"[\s().\-/]")


class CodeCheck(enum.Enum):
    """The outcome of checking a code; each has its own message for the person."""

    OK = "ok"
    WRONG = "That code didn't work. Check it and try again."
    EXPIRED = "That code has expired. Use Resend code to get a new one."
    EXHAUSTED = "That code was entered wrong too many times. Use Resend code to get a new one."
    MISSING = "There is no code waiting for you. Use Resend code to get one."
    THROTTLED = "Too many wrong codes. Wait a few minutes, or try another method."


def generate_code() -> str:
    return f"{secrets.randbelow(10 ** DIGITS):0{DIGITS}d}"


def hash_code(code: str) -> str:
    """The stored form of a code: HMAC-SHA-256 under the app's secret key."""
    key = current_app.secret_key
    key_bytes = key.encode("utf-8") if isinstance(key, str) else bytes(key or b"")
    return hmac.new(key_bytes, b"mfa-code:" + code.encode("ascii"), hashlib.sha256).hexdigest()


def normalise_phone(value: str) -> str:
    """An E.164 number ("+12035550100") from what a person typed, or MfaError."""
    number = PHONE_SEPARATORS.sub("", value.strip())
    if number.startswith("00"):
        number = "+" + number[2:]
    if not PHONE.match(number):
        raise MfaError("Enter your mobile number with its country code, like +1 203 555 0100.")
    return number


def mask_phone(phone: str) -> str:
    """All but the last two digits hidden: "+•••••••••63"."""
    digits_seen = sum(c.isdigit() for c in phone)
    shown, out = 0, []
    for char in phone:
        if char.isdigit():
            shown += 1
            out.append(char if shown > digits_seen - 2 else "•")
        else:
            out.append(char)
    return "".join(out)


def mask_destination(method: MfaMethod, destination: str | None = None) -> str:
    """Where a method's codes go, as shown on screen (phone numbers masked)."""
    where = destination or method.destination or ""
    return mask_phone(where) if method.kind == "sms" else where


def latest_code(method: MfaMethod) -> MfaCode | None:
    return db.session.scalars(
        db.select(MfaCode).where(MfaCode.method_id == method.id).order_by(MfaCode.id.desc())
    ).first()


def live_code(method: MfaMethod) -> MfaCode | None:
    """The method's code that can still be entered, if any."""
    code = latest_code(method)
    if code is None or code.used_at is not None or utcnow() >= code.expires_at \
            or code.attempts >= MAX_TRIES:
        return None
    return code


def resend_wait(method: MfaMethod) -> int:
    """Seconds before another code may be sent (0: now)."""
    code = latest_code(method)
    if code is None:
        return 0
    remaining = (code.created_at + RESEND_AFTER - utcnow()).total_seconds()
    return max(math.ceil(remaining), 0)


def send_code(method: MfaMethod, brand: str, destination: str | None = None) -> MfaCode:
    """Send a new code to `destination` (default: the method's); the previous one stops working.

    Raises MfaError within the resend cooldown or past the hourly ceiling.
    """
    now = utcnow()
    wait = resend_wait(method)
    if wait:
        raise MfaError(f"Please wait {wait} seconds before asking for another code.")
    recent = db.session.scalar(
        db.select(db.func.count(MfaCode.id)).where(
            MfaCode.method_id == method.id, MfaCode.created_at > now - timedelta(hours=1)
        )
    )
    if (recent or 0) >= MAX_SENDS_PER_HOUR:
        raise MfaError("Too many codes were sent in the last hour. Try another method, "
                       "or try again later.")
    where = destination or method.destination
    if not where:
        raise MfaError("There is no address to send a code to.")
    db.session.execute(
        update(MfaCode)
        .where(MfaCode.method_id == method.id, MfaCode.used_at.is_(None),
               MfaCode.expires_at > now)
        .values(expires_at=now)
    )
    code = generate_code()
    row = MfaCode(method_id=method.id, destination=where, code_hash=hash_code(code),
                  created_at=now, expires_at=now + LIFETIME)
    db.session.add(row)
    minutes = int(LIFETIME.total_seconds() // 60)
    if method.kind == "sms":
        queue_sms(where, "mfa_code",
                  f"{code} is your {brand} verification code. It expires in {minutes} "
                  "minutes. Never share it with anyone.")
    else:
        queue_email(where, "mfa_code", code=code, portal_name=brand, minutes=minutes)
    db.session.commit()
    return row


def check_code(method: MfaMethod, entered: str) -> tuple[CodeCheck, MfaCode | None]:
    """Check `entered` against the method's newest code; it works once, 5 tries at most."""
    if throttle_wait(method) is not None:
        return CodeCheck.THROTTLED, None
    row = latest_code(method)
    if row is None or row.used_at is not None:
        return CodeCheck.MISSING, None
    if utcnow() >= row.expires_at:
        return CodeCheck.EXPIRED, row
    # Count the try before checking it, in one conditional UPDATE: parallel guesses cannot
    # get past the limit.
    counted = db.session.execute(
        update(MfaCode)
        .where(MfaCode.id == row.id, MfaCode.attempts < MAX_TRIES, MfaCode.used_at.is_(None))
        .values(attempts=MfaCode.attempts + 1)
    )
    if counted.rowcount != 1:  # type: ignore[attr-defined]
        db.session.commit()
        return CodeCheck.EXHAUSTED, row
    entered = "".join(entered.split())
    if not (entered.isascii() and hmac.compare_digest(hash_code(entered), row.code_hash)):
        record_failure(method)
        db.session.commit()
        return CodeCheck.WRONG, row
    claimed = db.session.execute(
        update(MfaCode).where(MfaCode.id == row.id, MfaCode.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        db.session.commit()
        return CodeCheck.MISSING, row
    record_success(method)
    db.session.commit()
    db.session.refresh(row)
    return CodeCheck.OK, row
