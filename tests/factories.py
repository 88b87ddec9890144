"""Factory functions for test data."""

from __future__ import annotations

from itertools import count
from typing import Any

from idp.clients import NewClient, register_client
from idp.models import User
from idp.users import create_user

_numbers = count(1)
PASSWORD = "a long enough test password"
REDIRECT_URI = "https://rp.example.org/callback"


def make_user(email: str | None = None, password: str = PASSWORD, **kwargs: Any) -> User:
    email = email or f"person{next(_numbers)}@example.org"
    kwargs.setdefault("name", "Test Person")
    kwargs.setdefault("email_verified", True)
    return create_user(email, password, **kwargs)


def make_client(**kwargs: Any) -> NewClient:
    kwargs.setdefault("name", f"Test Portal {next(_numbers)}")
    kwargs.setdefault("redirect_uris", [REDIRECT_URI])
    kwargs.setdefault("first_party", True)
    return register_client(**kwargs)


def make_mfa_method(user: User, kind: str = "totp", destination: str | None = None) -> Any:
    """A confirmed MFA method; for "totp" returns (method, secret) to drive a pyotp client."""
    import pyotp
    from flask import current_app

    from idp.clock import utcnow
    from idp.db import db
    from idp.models import MfaMethod

    method = MfaMethod(user_id=user.id, kind=kind, confirmed_at=utcnow())
    secret = None
    if kind == "totp":
        secret = pyotp.random_base32()
        method.secret_encrypted = current_app.extensions["idp"].encryptor.encrypt(
            secret.encode("ascii"))
    else:
        method.destination = destination or (user.email if kind == "email" else "+12035550163")
    db.session.add(method)
    db.session.commit()
    return (method, secret) if kind == "totp" else method
