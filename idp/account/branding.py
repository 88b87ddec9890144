"""Per-portal colours as a stylesheet, so the pages keep a strict CSP (no inline styles)."""

from __future__ import annotations

import re

from flask import Response, abort

from idp.account import bp
from idp.db import db
from idp.models import Portal

COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


@bp.get("/branding/<slug>.css")
def branding(slug: str) -> Response:
    portal = db.session.execute(db.select(Portal).filter_by(slug=slug)).scalar_one_or_none()
    if portal is None or not portal.primary_color or not COLOUR.match(portal.primary_color):
        abort(404)
    response = Response(f":root {{ --accent: {portal.primary_color}; }}\n", mimetype="text/css")
    response.cache_control.public = True
    response.cache_control.max_age = 300
    return response
