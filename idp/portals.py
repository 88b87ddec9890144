"""Creating portals (the organisations behind clients)."""

from __future__ import annotations

import re

from idp.db import db
from idp.models import Portal

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class PortalError(ValueError):
    """Invalid portal data; the message names the field."""


def create_portal(slug: str, name: str) -> Portal:
    if not SLUG_PATTERN.match(slug):
        raise PortalError(f"slug: lowercase letters, digits and '-' only: {slug!r}")
    if not name.strip():
        raise PortalError("name: must not be empty")
    if db.session.execute(db.select(Portal.id).filter_by(slug=slug)).first():
        raise PortalError(f"slug: a portal {slug!r} already exists")
    portal = Portal(slug=slug, name=name.strip())
    db.session.add(portal)
    db.session.commit()
    return portal
