"""CSRF protection for every form: a random token in the (signed) session, echoed by the form."""

from __future__ import annotations

import hmac

from flask import request, session

from idp.errors import PageError
from idp.security.secrets import generate_secret

FIELD = "csrf_token"


def csrf_token() -> str:
    """The session's CSRF token, created on first use (a Jinja global)."""
    token = session.get(FIELD)
    if not token:
        token = session[FIELD] = generate_secret(24)
    return str(token)


def check_csrf() -> None:
    """Refuse a POST whose token is missing or belongs to another session."""
    sent = request.form.get(FIELD, "")
    expected = session.get(FIELD, "")
    if not sent or not expected or not hmac.compare_digest(str(sent), str(expected)):
        raise CsrfFailed(
            "This form has expired or was sent from another page. Go back, reload and try again."
        )


class CsrfFailed(PageError):
    status_code = 400
    title = "Please try again"
