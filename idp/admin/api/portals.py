"""Portals API: branding and the login policy (as a nested `policy` object).

A portal outside the API client's reach answers 404, as an unknown one does. The admin
console's own portal is read-only here: its policy keeps staff sign-ins behind MFA.
"""

from __future__ import annotations

from typing import Any

from flask import url_for

from idp.admin.access import CONSOLE_PORTAL_SLUG
from idp.admin.api.contacts import visible_portal
from idp.admin.api.pagination import paginate
from idp.admin.api.problems import ApiProblem, invalid
from idp.admin.api.registry import operation
from idp.admin.api.schemas import DATE_TIME, PAGE_PARAMS, errors_of, page_of, timestamp
from idp.admin.roles import PORTALS_CREATE, PORTALS_READ, PORTALS_WRITE, Actor
from idp.db import db
from idp.models import Portal
from idp.policy import KEEP_SIGNED_IN_LIMIT_DAYS, MFA_METHODS, SELF_REGISTRATION_MODES
from idp.portals import (
    MAX_NAME,
    MAX_URL,
    POLICY_MAXIMUMS,
    POLICY_TEXT_LIMITS,
    PortalError,
    create_portal,
    find_portal,
    update_portal,
)

TAG = "portals"
SLUG = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"}
NULLABLE_DATE = {"type": ["string", "null"], "format": "date"}


def _count(low: int, high: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": low, "maximum": high}


POLICY_PROPERTIES: dict[str, dict[str, Any]] = {
    "mfa_required_from": {**NULLABLE_DATE, "description": (
        "From this date everyone signing in must use a second factor; null: never")},
    "mfa_methods": {"type": "array", "items": {"enum": list(MFA_METHODS)}, "minItems": 1,
                    "uniqueItems": True},
    "mfa_skips_allowed": _count(0, POLICY_MAXIMUMS["mfa_skips_allowed"]),
    "trust_periods_hours": {"type": "array", "minItems": 1, "maxItems": 10,
                            "items": _count(1, POLICY_MAXIMUMS["trust_periods_hours"])},
    "email_username_migration_from": NULLABLE_DATE,
    "legacy_usernames_retired": {"type": "boolean"},
    "self_registration": {"enum": list(SELF_REGISTRATION_MODES)},
    "not_found_message": {"type": "string",
                          "maxLength": POLICY_TEXT_LIMITS["not_found_message"]},
    "set_password_link_days": _count(1, POLICY_MAXIMUMS["set_password_link_days"]),
    "reset_link_days": _count(1, POLICY_MAXIMUMS["reset_link_days"]),
    "invitation_message": {"type": "string",
                           "maxLength": POLICY_TEXT_LIMITS["invitation_message"]},
    "keep_me_signed_in_max_days": _count(1, KEEP_SIGNED_IN_LIMIT_DAYS),
    "idle_timeout_minutes": _count(1, POLICY_MAXIMUMS["idle_timeout_minutes"]),
    "session_max_hours": _count(1, POLICY_MAXIMUMS["session_max_hours"]),
    "password_min_length": _count(8, 64),
}
POLICY = {"type": "object", "additionalProperties": False,
          "required": list(POLICY_PROPERTIES), "properties": POLICY_PROPERTIES}
POLICY_CHANGES = {"type": "object", "additionalProperties": False, "minProperties": 1,
                  "properties": POLICY_PROPERTIES}
URL = {"type": ["string", "null"], "maxLength": MAX_URL}
BRANDING: dict[str, dict[str, Any]] = {
    "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
    "logo_url": URL,
    "primary_color": {"type": ["string", "null"], "pattern": "^#[0-9a-fA-F]{6}$"},
    "home_url": URL,
}
PORTAL = {
    "type": "object",
    "additionalProperties": False,
    "required": ["slug", *BRANDING, "policy", "created_at"],
    "properties": {"slug": {"type": "string"}, **BRANDING, "policy": POLICY,
                   "created_at": DATE_TIME},
}
PORTAL_CHANGES = {"type": "object", "additionalProperties": False, "minProperties": 1,
                  "properties": {**BRANDING, "policy": POLICY_CHANGES}}
NEW_PORTAL = {"type": "object", "additionalProperties": False, "required": ["slug", "name"],
              "properties": {"slug": SLUG, **BRANDING, "policy": POLICY_CHANGES}}


@operation(
    "GET", "/portals", summary="List portals by slug", tag=TAG, permission=PORTALS_READ,
    query=PAGE_PARAMS,
    responses={200: ("A page of portals", page_of(PORTAL)), **errors_of(401, 403, 422)},
)
def list_portals(actor: Actor, query: dict[str, Any]) -> Any:
    statement = db.select(Portal).order_by(Portal.slug)
    allowed = actor.portal_ids(PORTALS_READ)
    if allowed is not None:
        statement = statement.where(Portal.id.in_(allowed))
    return paginate(statement, query, serialize_portal)


@operation(
    "POST", "/portals", summary="Create a portal (branding and policy may follow at once)",
    tag=TAG, permission=PORTALS_CREATE, body=NEW_PORTAL,
    responses={201: ("The portal", PORTAL), **errors_of(400, 401, 403, 409, 422)},
)
def create(actor: Actor, query: dict[str, Any], body: dict[str, Any]) -> Any:
    if find_portal(body["slug"]) is not None:
        raise ApiProblem(409, f"A portal {body['slug']!r} already exists.")
    settings = _changes({k: v for k, v in body.items() if k not in ("slug", "name")})
    try:
        portal = create_portal(body["slug"], body["name"], actor=actor.label, settings=settings)
    except PortalError as exc:
        raise _problem(exc) from None
    location = url_for("admin_api.get_portal", slug=portal.slug)
    return serialize_portal(portal), 201, {"Location": location}


@operation(
    "GET", "/portals/{slug}", summary="One portal, with its login policy", tag=TAG,
    permission=PORTALS_READ, path_params={"slug": SLUG},
    responses={200: ("The portal", PORTAL), **errors_of(401, 403, 404)},
)
def get_portal(actor: Actor, slug: str, query: dict[str, Any]) -> Any:
    return serialize_portal(visible_portal(actor, slug, PORTALS_READ))


@operation(
    "PATCH", "/portals/{slug}",
    summary="Change branding and login policy settings (only the keys given)",
    tag=TAG, permission=PORTALS_WRITE, path_params={"slug": SLUG}, body=PORTAL_CHANGES,
    responses={200: ("The portal", PORTAL), **errors_of(400, 401, 403, 404, 422)},
)
def patch_portal(actor: Actor, slug: str, query: dict[str, Any],
                 body: dict[str, Any]) -> Any:
    portal = visible_portal(actor, slug, PORTALS_WRITE)
    if portal.slug == CONSOLE_PORTAL_SLUG:
        raise ApiProblem(403, "The admin console's own portal is managed by the IdP.")
    try:
        portal = update_portal(portal.slug, _changes(body), actor=actor.label)
    except PortalError as exc:
        raise _problem(exc) from None
    return serialize_portal(portal)


def serialize_portal(portal: Portal) -> dict[str, Any]:
    return {
        "slug": portal.slug,
        "name": portal.name,
        "logo_url": portal.logo_url,
        "primary_color": portal.primary_color,
        "home_url": portal.home_url,
        "policy": portal.policy.to_stored(),
        "created_at": timestamp(portal.created_at),
    }


def _changes(body: dict[str, Any]) -> dict[str, Any]:
    """Branding keys and the nested policy, flat, as idp.portals.update_portal takes them."""
    changes = {key: value for key, value in body.items() if key != "policy"}
    changes.update(body.get("policy") or {})
    return changes


def _problem(error: PortalError) -> ApiProblem:
    return invalid("A portal setting is invalid.", [
        {"field": key if key in BRANDING else f"policy/{key}", "message": why}
        for key, why in error.errors.items()])

