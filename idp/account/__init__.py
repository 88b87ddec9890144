"""Self-service pages around the sign-in: set a password from a link, reset, register."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("account", __name__)

from idp.account import branding, register, reset, set_password  # noqa: E402,F401  (routes)
