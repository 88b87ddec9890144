"""Self-service pages: set a password from a link, reset, register, and /account (MFA)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("account", __name__)

from idp.account import (  # noqa: E402,F401  (routes)
    branding,
    manage,
    register,
    reset,
    set_password,
)
