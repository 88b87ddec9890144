"""Trusted browsers: "Trust this browser" skips MFA on it for the period the person chose.

The browser keeps a long random device id in its own HttpOnly cookie (`__Host-idp-device`
on https, `idp_device` on http://localhost), separate from the session cookie: signing out
ends the session but not the trust. The server keeps the id's hash, the person it is bound
to and the expiry, so trust ends on time, on revocation and on an MFA reset whatever the
cookie says.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import after_this_request, current_app, has_request_context, request
from werkzeug.wrappers import Response

from idp.clock import utcnow
from idp.db import db
from idp.models import TrustedDevice, User
from idp.security.secrets import generate_secret, hash_secret

DEVICE_BYTES = 32


DEVICE_SET_KEY = "idp.device_id"  # this request's newly set device id (WSGI environ)


def cookie_name() -> str:
    """`__Host-` binds the cookie to this exact origin over https (RFC 6265bis 4.1.3.2)."""
    return "__Host-idp-device" if current_app.extensions["idp"].settings.uses_https \
        else "idp_device"


def _device_id() -> str | None:
    if not has_request_context():
        return None
    # A trust made in this request counts at once: the sign-in may finish in the same
    # request (the last form answers the client), before the browser sends the cookie.
    if DEVICE_SET_KEY in request.environ:
        return str(request.environ[DEVICE_SET_KEY])
    value = request.cookies.get(cookie_name(), "")
    return value if 20 <= len(value) <= 100 else None


def _trust_of(device: str, user: User) -> TrustedDevice | None:
    return db.session.scalars(
        db.select(TrustedDevice).where(
            TrustedDevice.device_hash == hash_secret(device), TrustedDevice.user_id == user.id
        )
    ).first()


def browser_is_trusted(user: User) -> bool:
    """This browser was trusted by `user` and the period has not ended."""
    device = _device_id()
    if device is None:
        return False
    row = _trust_of(device, user)
    return row is not None and row.is_current()


def amr_with_trust(user: User | None, amr: list[str]) -> list[str]:
    """The `amr` of a sign-in on a browser `user` trusts: the browser is a second factor.

    It was trusted right after a successful MFA and holds a device secret, so the sign-in
    is reported as multi-factor ("mfa", no method value: RFC 8176 has none for it).
    """
    if user is None or not amr or "mfa" in amr or not browser_is_trusted(user):
        return amr
    return [*amr, "mfa"]


def trust_browser(user: User, hours: int) -> TrustedDevice:
    """Trust this browser for `user` for `hours`; the cookie is set on this response."""
    device = _device_id() or generate_secret(DEVICE_BYTES)
    now = utcnow()
    row = _trust_of(device, user)
    if row is None:
        row = TrustedDevice(user_id=user.id, device_hash=hash_secret(device), created_at=now)
        db.session.add(row)
    row.expires_at = now + timedelta(hours=hours)
    row.revoked_at = None
    row.last_used_at = now
    row.user_agent = (request.user_agent.string or "")[:300] or None
    db.session.commit()
    # One cookie serves everyone who trusts this browser: it lives as long as the longest.
    until = db.session.scalar(
        db.select(db.func.max(TrustedDevice.expires_at)).where(
            TrustedDevice.device_hash == row.device_hash, TrustedDevice.revoked_at.is_(None)
        )
    ) or row.expires_at
    _set_cookie_after_request(device, until)
    request.environ[DEVICE_SET_KEY] = device
    return row


def _set_cookie_after_request(device: str, until: datetime) -> None:
    secure = current_app.extensions["idp"].settings.uses_https
    max_age = max(round((until - utcnow()).total_seconds()), 0)

    @after_this_request
    def set_device_cookie(response: Response) -> Response:
        response.set_cookie(cookie_name(), device, max_age=max_age, path="/", secure=secure,
                            httponly=True, samesite="Lax")
        return response


def trusted_devices(user: User) -> list[TrustedDevice]:
    """The browsers `user` trusts now (for the account page)."""
    rows = db.session.scalars(
        db.select(TrustedDevice).where(TrustedDevice.user_id == user.id)
        .order_by(TrustedDevice.created_at.desc())
    ).all()
    return [row for row in rows if row.is_current()]


def revoke_trusted_devices(user: User) -> int:
    """End every trust of `user` (an MFA reset; later the account page's "revoke all")."""
    rows = trusted_devices(user)
    for row in rows:
        row.revoked_at = utcnow()
    db.session.commit()
    return len(rows)


def revoke_trusted_device(user: User, device_id: object) -> bool:
    """End one trust of `user` (the account page's "Revoke"); False if there is none."""
    try:
        number = int(str(device_id))
    except ValueError:
        return False
    row = db.session.get(TrustedDevice, number)
    if row is None or row.user_id != user.id or not row.is_current():
        return False
    row.revoked_at = utcnow()
    db.session.commit()
    return True


def current_trust(user: User) -> TrustedDevice | None:
    """This browser's current trust by `user`, if any."""
    device = _device_id()
    if device is None:
        return None
    row = _trust_of(device, user)
    return row if row is not None and row.is_current() else None


def is_this_browser(row: TrustedDevice) -> bool:
    """The trust `row` is this browser's (to mark it on the account page)."""
    device = _device_id()
    return device is not None and row.device_hash == hash_secret(device)
