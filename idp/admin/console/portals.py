"""Console pages for portals: list, create (admins), branding and login policy.

Every setting of the login policy is a field with its effect explained beside it
(`POLICY_FIELDS`, in the order of docs/policy.md). Validation is idp.portals' (the same as
`idp portals set` and the API); a wrong field keeps what was typed and says why beside it.
A portal out of the staff member's reach answers 404, as an unknown one does. The admin
console's own portal is read-only: its policy keeps staff sign-ins behind MFA.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import request
from sqlalchemy import func
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from idp.admin.access import CONSOLE_PORTAL_SLUG
from idp.admin.console import bp
from idp.admin.console.pages import Forbidden, console_page, done, nav_item, render
from idp.admin.roles import CLIENTS_READ, PORTALS_CREATE, PORTALS_READ, PORTALS_WRITE, Actor
from idp.db import db
from idp.errors import NotFound
from idp.models import Client, Portal
from idp.policy import KEEP_SIGNED_IN_LIMIT_DAYS, LoginPolicy
from idp.portals import (
    BRANDING_KEYS,
    POLICY_KEYS,
    POLICY_MAXIMUMS,
    PortalError,
    create_portal,
    find_portal,
    update_portal,
)
from idp.security.csrf import check_csrf

nav_item("portals_list", "Portals", PORTALS_READ,
         "Each portal's branding and login policy: MFA, sessions, passwords, new users.")

MFA_METHOD_LABELS = {
    "totp": "Authenticator app",
    "email": "Email",
    "sms": "Text message",
    "webauthn": "Passkey or security key",
}
SELF_REGISTRATION_LABELS = {
    "off": "Off: no \"Create an account\" link",
    "match_only": "Match only: only people found in the portal's contacts",
    "create": "Create: anyone may register; a contact is made when none matches",
}


@dataclass(frozen=True)
class PolicyField:
    key: str
    label: str
    kind: str  # date, number, text, textarea, checkbox, methods, choice
    effect: str
    low: int | None = None
    high: int | None = None


def _number(key: str, label: str, effect: str, low: int, high: int | None = None) -> PolicyField:
    return PolicyField(key, label, "number", effect, low, high or POLICY_MAXIMUMS.get(key))


# The login policy as groups of fields, each with its effect in plain words.
POLICY_GROUPS: list[tuple[str, list[PolicyField]]] = [
    ("Two-step verification (MFA)", [
        PolicyField("mfa_required_from", "MFA required from", "date",
                    "From this date everyone signing in to this portal must use a second "
                    "factor, and sets one up at their first sign-in if they have none. Before "
                    "it, setting one up is offered and can be skipped. Empty: never required."),
        _number("mfa_skips_allowed", "Skips allowed before the date",
                "How many times a person may choose \"Skip for now\" when offered two-step "
                "verification before it is required.", 0),
        PolicyField("mfa_methods", "Methods offered", "methods",
                    "The second factors people may use. A text message is only offered "
                    "beside a stronger method, with a note about its risk."),
        PolicyField("trust_periods_hours", "\"Trust this browser\" choices (hours)", "text",
                    "Comma-separated hours, like 24, 720: after a second factor, people may "
                    "skip it on this browser for that long (720 hours is 30 days). The longest "
                    "choice is preselected."),
    ]),
    ("Sign-in and sessions", [
        _number("keep_me_signed_in_max_days", "Keep me signed in for (days)",
                "With \"Keep me signed in\" ticked, the browser stays signed in this many "
                f"days. At most {KEEP_SIGNED_IN_LIMIT_DAYS}.", 1, KEEP_SIGNED_IN_LIMIT_DAYS),
        _number("idle_timeout_minutes", "Idle timeout (minutes)",
                "Without \"Keep me signed in\", a session ends after this many minutes "
                "without activity.", 1),
        _number("session_max_hours", "Session maximum (hours)",
                "Without \"Keep me signed in\", a session ends this long after sign-in even "
                "when active (NIST SP 800-63B: 12 hours).", 1),
    ]),
    ("Passwords and links", [
        _number("password_min_length", "Shortest password (characters)",
                "The shortest password accepted, 8 to 64. NIST SP 800-63B asks for 15 when "
                "the password is the only factor and allows 8 with a second factor.", 8, 64),
        _number("reset_link_days", "Reset link lifetime (days)",
                "How long a \"Password not working?\" link (and a registration link) works.", 1),
        _number("set_password_link_days", "Invitation link lifetime (days)",
                "How long the \"choose your password\" link in invitations and staff-sent "
                "reset emails works.", 1),
        PolicyField("invitation_message", "Invitation message", "textarea",
                    "The text of invitation emails, above the link; each invitation may "
                    "replace it."),
    ]),
    ("New users", [
        PolicyField("self_registration", "Self-registration", "choice",
                    "Whether the sign-in page offers \"New user? Create an account\". With "
                    "match only, the person proves their email and must then be found in the "
                    "portal's contacts; otherwise they see the message below and no account "
                    "is made."),
        PolicyField("not_found_message", "Not-found message", "textarea",
                    "Shown (with match only) to someone who is not in the portal's contacts."),
    ]),
    ("Usernames from the previous system", [
        PolicyField("email_username_migration_from", "Move usernames to email from", "date",
                    "From this date, someone signing in with an old username is asked to "
                    "confirm their email, prove it with a code and choose a new password; "
                    "from then on they sign in with their email. Before it, old usernames "
                    "sign in as they always did. Empty: the move starts at once."),
        PolicyField("legacy_usernames_retired", "Old usernames retired", "checkbox",
                    "When the move is finished: old usernames no longer sign in or reset a "
                    "password; only emails do."),
    ]),
]
POLICY_FIELDS = [field for _, fields in POLICY_GROUPS for field in fields]
assert sorted(f.key for f in POLICY_FIELDS) == sorted(POLICY_KEYS), "a policy key has no field"
LABELS = {"name": "Name", "logo_url": "Logo URL", "primary_color": "Primary colour",
          "home_url": "Home URL", "slug": "Slug", **{f.key: f.label for f in POLICY_FIELDS}}


# -- who sees what ----------------------------------------------------------------------


def visible_portal(actor: Actor, slug: str, permission: str = PORTALS_READ) -> Portal:
    """The portal, if `actor` may do `permission` there; 404 when out of reach."""
    portal = find_portal(slug)
    if portal is None or not actor.can(PORTALS_READ, portal.id):
        raise NotFound("There is no portal with this name.")
    if not actor.can(permission, portal.id):
        raise Forbidden("Your role does not allow changing this portal.")
    return portal


# -- list, details, create --------------------------------------------------------------


@bp.get("/portals")
@console_page(PORTALS_READ)
def portals_list(actor: Actor) -> str:
    counts = db.select(Client.portal_id, func.count(Client.id).label("n")) \
        .group_by(Client.portal_id).subquery()
    statement = db.select(Portal, func.coalesce(counts.c.n, 0)) \
        .outerjoin(counts, counts.c.portal_id == Portal.id).order_by(Portal.name)
    allowed = actor.portal_ids(PORTALS_READ)
    if allowed is not None:
        statement = statement.where(Portal.id.in_(allowed))
    rows = db.session.execute(statement).all()
    return render("portals/list", actor, rows=rows, can_create=actor.can(PORTALS_CREATE),
                  mode_labels=SELF_REGISTRATION_LABELS)


@bp.get("/portals/<slug>")
@console_page(PORTALS_READ)
def portals_show(actor: Actor, slug: str) -> str:
    portal = visible_portal(actor, slug)
    clients = db.session.execute(db.select(Client).filter_by(portal_id=portal.id)
                                 .order_by(Client.name)).scalars().all()
    return render("portals/show", actor, p=portal, policy=portal.policy, groups=POLICY_GROUPS,
                  clients=clients, can_see_clients=actor.can(CLIENTS_READ, portal.id),
                  can_edit=actor.can(PORTALS_WRITE, portal.id) and not _built_in(portal),
                  built_in=_built_in(portal), shown=_shown,
                  method_labels=MFA_METHOD_LABELS, mode_labels=SELF_REGISTRATION_LABELS)


@bp.route("/portals/new", methods=["GET", "POST"])
@console_page(PORTALS_CREATE)
def portals_new(actor: Actor) -> Response | str | tuple[str, int]:
    if request.method == "GET":
        return render("portals/new", actor, values={"slug": "", "name": ""}, errors={},
                      labels=LABELS)
    check_csrf()
    slug, name = request.form.get("slug", "").strip(), request.form.get("name", "")
    try:
        portal = create_portal(slug, name, actor=actor.label)
    except PortalError as exc:
        return render("portals/new", actor, values=request.form, errors=exc.errors,
                      labels=LABELS), 422
    return done("console.portals_edit", "Portal created. Now set its branding and login "
                "policy.", slug=portal.slug)


# -- branding and login policy ----------------------------------------------------------


@bp.route("/portals/<slug>/edit", methods=["GET", "POST"])
@console_page(PORTALS_WRITE)
def portals_edit(actor: Actor, slug: str) -> Response | str | tuple[str, int]:
    portal = visible_portal(actor, slug, PORTALS_WRITE)
    if _built_in(portal):
        raise Forbidden("The admin console's own portal is managed by the IdP: its policy "
                        "keeps staff sign-ins behind two-step verification.")
    if request.method == "GET":
        return _form(actor, portal, _values_of(portal), {})
    check_csrf()
    changes = read_portal_form(request.form)
    try:
        update_portal(portal.slug, changes, actor=actor.label)
    except PortalError as exc:
        return _form(actor, portal, _typed(request.form), exc.errors), 422
    return done("console.portals_show", "Saved.", slug=portal.slug)


def read_portal_form(form: MultiDict[str, str]) -> dict[str, str]:
    """Every branding key and policy setting, as text (idp.portals parses and checks it)."""
    changes = {key: form.get(key, "") for key in BRANDING_KEYS}
    for field in POLICY_FIELDS:
        if field.kind == "methods":
            changes[field.key] = ",".join(form.getlist(field.key))
        elif field.kind == "checkbox":
            changes[field.key] = "true" if form.get(field.key) == "yes" else "false"
        else:
            changes[field.key] = form.get(field.key, "")
    return changes


def _typed(form: MultiDict[str, str]) -> dict[str, Any]:
    """The submitted form, shaped like `_values_of`, to show again as typed."""
    values: dict[str, Any] = {key: form.get(key, "") for key in (*BRANDING_KEYS, *POLICY_KEYS)}
    values["mfa_methods"] = form.getlist("mfa_methods")
    values["legacy_usernames_retired"] = form.get("legacy_usernames_retired") == "yes"
    return values


def _values_of(portal: Portal) -> dict[str, Any]:
    values: dict[str, Any] = {key: getattr(portal, key) or "" for key in BRANDING_KEYS}
    for key, value in portal.policy.to_stored().items():
        if key == "mfa_methods" or isinstance(value, bool):
            values[key] = value
        elif isinstance(value, list):
            values[key] = ", ".join(str(v) for v in value)
        else:
            values[key] = "" if value is None else str(value)
    return values


def _form(actor: Actor, portal: Portal, values: dict[str, Any],
          errors: dict[str, str]) -> str:
    return render("portals/edit", actor, p=portal, values=values, errors=errors,
                  groups=POLICY_GROUPS, labels=LABELS, defaults=LoginPolicy().to_stored(),
                  method_labels=MFA_METHOD_LABELS, mode_labels=SELF_REGISTRATION_LABELS)


def _built_in(portal: Portal) -> bool:
    return portal.slug == CONSOLE_PORTAL_SLUG


def _shown(value: Any) -> str:
    """A policy value in words, for the details page."""
    if value is None:
        return "Not set"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value)
    return str(value)
