"""Creating portals (the organisations behind clients)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from idp.db import db
from idp.models import Portal
from idp.policy import PolicyError

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


BRANDING_KEYS = ("name", "logo_url", "primary_color", "home_url")
COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


def update_portal(slug: str, changes: dict[str, str]) -> Portal:
    """Apply `key=value` changes: branding keys or any login policy setting."""
    portal = db.session.execute(db.select(Portal).filter_by(slug=slug)).scalar_one_or_none()
    if portal is None:
        raise PortalError(f"portal: no portal with slug {slug!r}")
    policy_changes = {k: v for k, v in changes.items() if k not in BRANDING_KEYS}
    for key in BRANDING_KEYS:
        if key not in changes:
            continue
        value = changes[key].strip() or None
        if key == "name" and not value:
            raise PortalError("name: must not be empty")
        if key == "primary_color" and value and not COLOUR.match(value):
            raise PortalError("primary_color: a colour like #1f5fbf")
        if key in ("logo_url", "home_url") and value:
            _check_url(key, value)
        setattr(portal, key, value)
    if policy_changes:
        try:
            portal.policy = portal.policy.with_changes(**policy_changes)
        except PolicyError as exc:
            raise PortalError(str(exc)) from None
    db.session.commit()
    return portal


def _check_url(key: str, value: str) -> None:
    parts = urlsplit(value)
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme not in ("https", "http") or (parts.scheme == "http" and not local) \
            or not parts.hostname:
        raise PortalError(f"{key}: an https URL (http only for localhost)")
