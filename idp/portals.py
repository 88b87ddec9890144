"""Creating portals (the organisations behind clients) and changing their branding and
login policy; one validation for the CLI, the console and the API."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from idp import audit
from idp.db import db
from idp.models import Portal
from idp.policy import LoginPolicy, PolicyError

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
BRANDING_KEYS = ("name", "logo_url", "primary_color", "home_url")
POLICY_KEYS = tuple(LoginPolicy().to_stored())
COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
MAX_NAME, MAX_URL = 200, 2000
# Upper bounds the policy itself leaves open: beyond them a value is a typo, and would
# overflow the date arithmetic of sign-in. (The policy's own limits are in idp.policy.)
POLICY_MAXIMUMS = {
    "mfa_skips_allowed": 100,
    "trust_periods_hours": 8760,  # a year
    "set_password_link_days": 90,
    "reset_link_days": 30,
    "idle_timeout_minutes": 129_600,  # 90 days, the keep-me-signed-in limit
    "session_max_hours": 2160,  # 90 days
}
POLICY_TEXT_LIMITS = {"not_found_message": 2000, "invitation_message": 5000}


class PortalError(ValueError):
    """Invalid portal data; `errors` maps each wrong key to why (the message lists all)."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{key}: {why}" for key, why in self.errors.items()))


def find_portal(slug: str) -> Portal | None:
    """The portal with `slug`; None for an unknown or malformed slug."""
    if not SLUG_PATTERN.fullmatch(slug):
        return None
    return db.session.execute(  # type: ignore[no-any-return]
        db.select(Portal).filter_by(slug=slug)).scalar_one_or_none()


def create_portal(slug: str, name: str, actor: str = "cli",
                  settings: dict[str, Any] | None = None) -> Portal:
    """A new portal; `settings` (branding keys, policy settings) are checked first too."""
    settings = {k: v for k, v in (settings or {}).items() if k != "name"}
    errors = check_portal_changes(settings, LoginPolicy())
    if not SLUG_PATTERN.fullmatch(slug):
        errors["slug"] = f"lowercase letters, digits and '-' only (at most 63): {slug!r}"
    elif find_portal(slug) is not None:
        errors["slug"] = f"a portal {slug!r} already exists"
    if why := _branding_problem("name", name.strip()):
        errors["name"] = why
    if errors:
        raise PortalError(errors)
    portal = Portal(slug=slug, name=name.strip())
    _apply(portal, settings)
    db.session.add(portal)
    audit.record("portal.created", actor=actor, subject=slug, portal=slug, commit=False,
                 name=portal.name, keys=sorted(settings))
    db.session.commit()
    return portal


def update_portal(slug: str, changes: dict[str, Any], actor: str = "cli") -> Portal:
    """Apply `key=value` changes: branding keys or any login policy setting.

    Values may be strings (as typed on the command line or in a form) or typed values
    (from the API). Every key is checked before anything changes.
    """
    portal = find_portal(slug)
    if portal is None:
        raise PortalError({"portal": f"no portal with slug {slug!r}"})
    errors = check_portal_changes(changes, portal.policy)
    if errors:
        raise PortalError(errors)
    before = {**_branding_of(portal), **portal.policy.to_stored()}
    _apply(portal, changes)
    after = {**_branding_of(portal), **portal.policy.to_stored()}
    changed = sorted(key for key in after if after[key] != before[key])
    if changed:
        audit.record("portal.updated", actor=actor, subject=slug, portal=slug, commit=False,
                     keys=changed)
    db.session.commit()
    return portal


def check_portal_changes(changes: dict[str, Any], policy: LoginPolicy) -> dict[str, str]:
    """Why each wrong key of `changes` is wrong (empty when all are right)."""
    errors: dict[str, str] = {}
    for key, value in changes.items():
        if key in BRANDING_KEYS:
            if why := _branding_problem(key, _text(value)):
                errors[key] = why
            continue
        # One key at a time, so that each wrong key gets its own message.
        try:
            _check_bounds(key, policy.with_changes(**{key: value}))
        except PolicyError as exc:
            errors[key] = str(exc).partition(": ")[2] or str(exc)
    return errors


def _apply(portal: Portal, changes: dict[str, Any]) -> None:
    for key in BRANDING_KEYS:
        if key in changes:
            setattr(portal, key, _text(changes[key]))
    policy_changes = {k: v for k, v in changes.items() if k not in BRANDING_KEYS}
    if policy_changes:
        portal.policy = portal.policy.with_changes(**policy_changes)


def _text(value: Any) -> str | None:
    return str(value or "").strip() or None


def _branding_of(portal: Portal) -> dict[str, Any]:
    return {key: getattr(portal, key) for key in BRANDING_KEYS}


def _branding_problem(key: str, value: str | None) -> str | None:
    if key == "name":
        if not value:
            return "must not be empty"
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            return "must not contain control characters"
        return f"at most {MAX_NAME} characters" if len(value) > MAX_NAME else None
    if key == "primary_color" and value and not COLOUR.fullmatch(value):
        return "a colour like #1f5fbf"
    if key in ("logo_url", "home_url") and value:
        return _url_problem(value)
    return None


def _url_problem(value: str) -> str | None:
    if len(value) > MAX_URL:
        return f"at most {MAX_URL} characters"
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
    except ValueError:
        return "not a valid URL"
    local = hostname in ("127.0.0.1", "localhost", "::1")
    if any(c.isspace() for c in value) or parts.scheme not in ("https", "http") \
            or (parts.scheme == "http" and not local) or not hostname:
        return "an https URL (http only for localhost)"
    return None


def _check_bounds(key: str, policy: LoginPolicy) -> None:
    value = getattr(policy, key)
    if key == "mfa_methods" and not value:
        raise PolicyError(f"{key}: choose at least one method")
    if key in POLICY_TEXT_LIMITS and len(value) > POLICY_TEXT_LIMITS[key]:
        raise PolicyError(f"{key}: at most {POLICY_TEXT_LIMITS[key]} characters")
    if key in POLICY_TEXT_LIMITS and "\x00" in value:
        raise PolicyError(f"{key}: must not contain NUL characters")
    if key in POLICY_MAXIMUMS:
        highest = POLICY_MAXIMUMS[key]
        values = value if isinstance(value, tuple) else (value,)
        if any(v > highest for v in values):
            raise PolicyError(f"{key}: at most {highest}")
