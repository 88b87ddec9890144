"""Authenticator apps: RFC 6238 TOTP (SHA-1, 6 digits, 30 s), the way Google Authenticator,
Microsoft Authenticator and FreeOTP expect it.

The seed is encrypted at rest; a code is accepted within one time step of drift either way,
and never twice: the last accepted step is remembered (RFC 6238 5.2).
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

import pyotp
import segno
from flask import current_app
from sqlalchemy import or_, update

from idp.clock import clock
from idp.db import db
from idp.mfa.methods import pending_method, record_failure, record_success, throttle_wait
from idp.models import MfaMethod, User

PERIOD = 30
DIGITS = 6
DRIFT_STEPS = 1  # RFC 6238 5.2: at most one step of network delay or clock drift


def new_secret() -> str:
    """A 160-bit base32 seed (RFC 4226 4 recommends 160 bits)."""
    return pyotp.random_base32(32)


def current_step() -> int:
    """The RFC 6238 time step of now (the IdP's clock, so tests can move it)."""
    return int(clock.timestamp()) // PERIOD


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The otpauth:// URI the QR code carries (issuer and account name shown by the app)."""
    return _totp(secret).provisioning_uri(name=account, issuer_name=issuer)


def qr_code_data_uri(uri: str) -> str:
    """The QR code of `uri` as an SVG data: URI, drawn here (the CSP allows img-src data:)."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2))


def grouped(secret: str) -> str:
    """The seed in groups of four, for typing into an app by hand."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def default_issuer() -> str:
    """The issuer shown in the app when no portal name applies: the IdP's host name."""
    return urlsplit(current_app.extensions["idp"].settings.server.issuer).hostname or "Portal IdP"


def start_enrolment(user: User, restart: bool = False) -> MfaMethod:
    """The authenticator app being set up: the same seed until confirmed (or restarted)."""
    method = pending_method(user, "totp")
    if method is not None and not restart:
        return method
    if method is not None:
        db.session.delete(method)
    encryptor = current_app.extensions["idp"].encryptor
    method = MfaMethod(user_id=user.id, kind="totp",
                       secret_encrypted=encryptor.encrypt(new_secret().encode("ascii")))
    db.session.add(method)
    db.session.commit()
    return method


def secret_of(method: MfaMethod) -> str:
    """The decrypted seed (only to show while setting up, and to check codes)."""
    assert method.secret_encrypted is not None
    encryptor = current_app.extensions["idp"].encryptor
    return encryptor.decrypt(method.secret_encrypted).decode("ascii")


def matching_step(secret: str, code: str, after: int | None) -> int | None:
    """The time step within the drift window whose code is `code`, later than `after`."""
    code = "".join(code.split())
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    totp = _totp(secret)
    now = current_step()
    found = None
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        # Compare every candidate (constant time each), so timing says nothing.
        if hmac.compare_digest(totp.generate_otp(step), code) and (after is None or step > after):
            found = step if found is None else found
    return found


def verify_totp(method: MfaMethod, code: str) -> bool:
    """Check `code`; on success remember its step so it cannot be used again."""
    if throttle_wait(method) is not None:
        return False
    step = matching_step(secret_of(method), code, method.counter)
    if step is not None:
        # A conditional UPDATE: of two requests racing with one code, only one wins.
        claimed = db.session.execute(
            update(MfaMethod)
            .where(MfaMethod.id == method.id,
                   or_(MfaMethod.counter.is_(None), MfaMethod.counter < step))
            .values(counter=step)
        )
        if claimed.rowcount == 1:  # type: ignore[attr-defined]
            method.counter = step
            record_success(method)
            db.session.commit()
            return True
    record_failure(method)
    db.session.commit()
    return False
