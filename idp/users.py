"""Creating users (the CLI and, later, invitations and registration use this)."""

from __future__ import annotations

import re

from flask import current_app

from idp.db import db
from idp.models import User
from idp.models.user import normalise_email
from idp.security.password_policy import normalise_password

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 8


class UserError(ValueError):
    """Invalid user data; the message names the field."""


def create_user(
    email: str,
    password: str | None,
    name: str | None = None,
    email_verified: bool = False,
) -> User:
    email = normalise_email(email)
    if not EMAIL_PATTERN.match(email) or len(email) > 320:
        raise UserError(f"email: not a valid address: {email!r}")
    if db.session.execute(db.select(User.id).filter_by(email=email)).first():
        raise UserError(f"email: an account for {email} already exists")
    user = User(email=email, name=(name or "").strip() or None, email_verified=email_verified)
    if password is not None:
        password = normalise_password(password)
        if len(password) < MIN_PASSWORD_LENGTH:
            raise UserError(f"password: at least {MIN_PASSWORD_LENGTH} characters")
        user.password_hash = current_app.extensions["idp"].passwords.hash(password)
    db.session.add(user)
    db.session.commit()
    return user
