"""Role boundaries, generated from the registries: every console section (pages.NAV, and
every console route under it) and every API operation (registry.OPERATIONS).

- A role without a section's permission gets 403 on each of the section's pages and
  actions (a support user on a client's page, on its edit form, posting its disable
  button); an API client without an operation's permission gets 403.
- A portal_admin of Lakeside gets 403 or 404 on anything of Hillcrest's, by URL, and never
  sees a Hillcrest name, client or person on any console page or API list.
- The same URLs work for an administrator, so the 403s and 404s are not just bad URLs.

New pages and operations join the matrix when they register; a new kind of path
parameter needs a value in `hillcrest_values` (the test says which).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import find
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from sqlalchemy import select
from werkzeug.routing import Rule

from idp.admin.api.registry import OPERATIONS, Operation
from idp.admin.console.pages import NAV
from idp.admin.roles import ADMIN, PORTAL_ADMIN, SUPPORT, Actor, Grant
from idp.clock import utcnow
from idp.db import db
from idp.invitations import send_invitation
from idp.models import AuditEvent, Contact
from idp.models.outbox import FAILED
from idp.notify.outbox import queue_email
from idp.portals import create_portal
from tests.admin_fixtures import api_headers, api_token, console_sign_in, make_staff
from tests.factories import make_client, make_mfa_method, make_user
from tests.test_admin_csrf import csrf_token_of, database_state

API = "/admin/api/v1"
DENIED = (403, 404)
# Console routes that are not pages of a section (sign-in machinery, the home page).
NOT_SECTIONS = {"console.sign_in", "console.callback", "console.sign_out",
                "console.signed_out", "console.home", "console.static"}


@pytest.fixture
def world(app):
    """Two portals, each with a client, a person (contact), an invitation and a failed
    email; Hillcrest's names are distinctive so that a leak shows on any page."""
    lakeside = create_portal("lakeside", "Lakeside MLS")
    hillcrest = create_portal("hillcrest", "Hillcrest Church")
    lake_app = make_client(portal_slug="lakeside", name="Lakeside app")
    hill_app = make_client(portal_slug="hillcrest", name="Hillcrest Choir app")
    people = {}
    for portal, email, contact in ((lakeside, "lou@lakeside.example", "L-1"),
                                   (hillcrest, "harriet@hillcrest.example", "H-1")):
        person = make_user(email, name=email.split("@")[0].title())
        make_mfa_method(person, "totp")
        db.session.add(Contact(portal_id=portal.id, external_id=contact, email=email,
                               name=person.name, user_id=person.id))
        failed = queue_email(email, "mfa_reset", name=person.name)
        failed.status, failed.next_attempt_at = FAILED, utcnow()
        people[portal.slug] = (person, failed)
    db.session.commit()
    invitation = send_invitation(hillcrest, "hopeful@hillcrest.example", name="Hopeful",
                                 actor="test")
    harriet, harriet_mail = people["hillcrest"]
    return {
        "lakeside": lakeside, "hillcrest": hillcrest, "lake_app": lake_app,
        "markers": ("Hillcrest", hill_app.client.client_id, harriet.email, harriet.sub,
                    "hopeful@hillcrest.example"),
        "values": {
            "slug": "hillcrest", "client_id": hill_app.client.client_id,
            "user_id": harriet.id, "sub": harriet.sub, "message_id": harriet_mail.id,
            "invitation_id": invitation.id, "contact_id": "H-1", "reveal_id": "none",
        },
    }


def hillcrest_values(world, names) -> dict[str, Any]:
    """Values of Hillcrest's things for a route's parameters."""
    missing = [name for name in names if name not in world["values"]]
    assert not missing, f"add a Hillcrest value for path parameter(s) {missing}"
    return {name: world["values"][name] for name in names}


def actor_of(role: str, world) -> Actor:
    portal_id = world["lakeside"].id if role == PORTAL_ADMIN else None
    return Actor(role, (Grant(role, portal_id),))


@pytest.fixture
def consoles(app, world):
    """A signed-in console per role (the portal_admin's portal is Lakeside)."""
    signed_in = {}
    for role in (ADMIN, SUPPORT, PORTAL_ADMIN):
        http = app.test_client()
        console_sign_in(http, make_staff(role, "lakeside" if role == PORTAL_ADMIN else None,
                                         email=f"{role}@staff.example"))
        signed_in[role] = http
    return signed_in


# -- the console ------------------------------------------------------------------------------


def console_rules(app) -> list[Rule]:
    return [rule for rule in app.url_map.iter_rules()
            if rule.endpoint.startswith("console.") and rule.endpoint not in NOT_SECTIONS]


def section_of(app, rule: Rule):
    """The NAV section a console route belongs to: the one whose page its path extends."""
    with app.test_request_context():
        from flask import url_for

        prefixes = [(url_for(item.endpoint), item) for item in NAV]
    matches = [(path, item) for path, item in prefixes
               if rule.rule == path or rule.rule.startswith(path.rstrip("/") + "/")]
    return max(matches, key=lambda match: len(match[0]))[1] if matches else None


def url_of(app, rule: Rule, values: dict[str, Any]) -> str:
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **values)


def test_every_console_route_belongs_to_a_section(app):
    orphans = [rule.rule for rule in console_rules(app) if section_of(app, rule) is None]
    assert not orphans, f"console routes outside every NAV section: {orphans}"
    assert NAV, "no console section registered"


def test_a_role_without_a_sections_permission_gets_403_on_each_of_its_pages(
    app, world, consoles
):
    failures, checked = [], []
    for rule in console_rules(app):
        item = section_of(app, rule)
        url = url_of(app, rule, hillcrest_values(world, rule.arguments))
        for role, http in consoles.items():
            if actor_of(role, world).can(item.permission):
                continue
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                checked.append(f"{role} {method} {rule.rule}")
                data = {"csrf_token": csrf_token_of(http)} if method == "POST" else None
                before = database_state() if method == "POST" else None
                response = http.open(url, method=method, data=data)
                if response.status_code != 403:
                    failures.append(f"{role} {method} {url}: {response.status_code}")
                if before is not None and database_state() != before:
                    failures.append(f"{role} {method} {url} changed the database")
    assert not failures, "\n".join(failures)
    # Support has no client pages at all: their pages and actions were all tried.
    assert {"support GET /admin/clients/<client_id>/edit",
            "support POST /admin/clients/<client_id>/disable"} <= set(checked)


def test_each_role_sees_the_sections_its_permissions_allow(app, world, consoles):
    for role, http in consoles.items():
        home = http.get("/admin/").get_data(as_text=True)
        for item in NAV:
            with app.test_request_context():
                from flask import url_for

                path = url_for(item.endpoint)
            allowed = actor_of(role, world).can(item.permission)
            assert http.get(path).status_code == (200 if allowed else 403), (role, path)
            assert (f'href="{path}"' in home) == allowed, (role, path)


def test_a_portal_admin_gets_403_or_404_on_every_other_portal_url(app, world, consoles):
    failures = []
    admin, portal_admin = consoles[ADMIN], consoles[PORTAL_ADMIN]
    for rule in console_rules(app):
        if not rule.arguments:
            continue
        url = url_of(app, rule, hillcrest_values(world, rule.arguments))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            data = {"csrf_token": csrf_token_of(portal_admin)} if method == "POST" else None
            before = database_state() if method == "POST" else None
            response = portal_admin.open(url, method=method, data=data)
            if response.status_code not in DENIED:
                failures.append(f"portal_admin {method} {url}: {response.status_code}")
            if before is not None and database_state() != before:
                failures.append(f"portal_admin {method} {url} changed the database")
            if method == "GET" and "reveal_id" not in rule.arguments:
                # The administrator reaches the same URL: it names something real.
                status = admin.get(url).status_code
                if status != 200:
                    failures.append(f"admin GET {url}: {status} (the URL names nothing)")
    assert not failures, "\n".join(failures)


def test_a_portal_admin_never_sees_another_portals_names_on_a_console_page(
    app, world, consoles
):
    from tests.test_admin_csrf import crawl_console

    portal_admin = consoles[PORTAL_ADMIN]
    leaks = []
    # Every page it can reach, every search typed with Hillcrest's person's sub, then
    # email (the typed text is shown back in the search field: not a leak).
    for typed in (world["values"]["sub"], "harriet@hillcrest.example"):
        for url in crawl_console(portal_admin, typed).visited:
            body = portal_admin.get(url).get_data(as_text=True)
            leaks += [f"{url} shows {marker!r}" for marker in world["markers"]
                      if marker in body and marker != typed]
    assert not leaks, "\n".join(leaks)
    # The administrator's crawl does show them: the markers are real.
    admin_pages = " ".join(consoles[ADMIN].get(url).get_data(as_text=True)
                           for url in crawl_console(consoles[ADMIN], "harriet").visited)
    assert all(marker in admin_pages for marker in world["markers"][:3])


def test_support_cannot_edit_clients(app, world, consoles):
    support = consoles[SUPPORT]
    client_id = world["lake_app"].client.client_id
    token = {"csrf_token": csrf_token_of(support)}
    assert support.get(f"/admin/clients/{client_id}").status_code == 403
    assert support.get(f"/admin/clients/{client_id}/edit").status_code == 403
    for action in ("edit", "disable", "rotate-secret"):
        response = support.post(f"/admin/clients/{client_id}/{action}",
                                data={**token, "name": "Hijacked"})
        assert response.status_code == 403, action
    assert support.post("/admin/clients/new", data={**token, "name": "Mine"}).status_code == 403
    client = world["lake_app"].client
    db.session.refresh(client)
    assert client.name == "Lakeside app" and client.disabled_at is None
    assert not db.session.scalars(select(AuditEvent).where(
        AuditEvent.kind.like("client.%"), AuditEvent.actor.like("admin:support%"))).all()


def test_portal_admin_cannot_see_other_portals(app, world, consoles):
    portal_admin = consoles[PORTAL_ADMIN]
    assert portal_admin.get("/admin/portals/hillcrest").status_code in DENIED
    assert "Hillcrest" not in portal_admin.get("/admin/portals").get_data(as_text=True)
    assert "Lakeside MLS" in portal_admin.get("/admin/portals").get_data(as_text=True)
    harriet = world["values"]["user_id"]
    assert portal_admin.get(f"/admin/people/{harriet}").status_code in DENIED
    found = portal_admin.get("/admin/people?q=harriet").get_data(as_text=True)
    assert "harriet@hillcrest.example" not in found
    token = api_token(portal_admin, portal_slug="lakeside")
    response = portal_admin.get(f"{API}/portals/hillcrest", headers=api_headers(token))
    assert response.status_code in DENIED
    listed = portal_admin.get(f"{API}/portals", headers=api_headers(token)).json
    assert [portal["slug"] for portal in listed["items"]] == ["lakeside"]


# -- the API ----------------------------------------------------------------------------------


def minimal(schema: dict[str, Any]) -> Any:
    """The simplest instance of a (request) JSON Schema, deterministic."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            rest = {k: v for k, v in schema.items() if k != key}
            return minimal({**rest, **schema[key][0]})
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "object":
        properties = schema.get("properties", {})
        names = list(schema.get("required", [])) or list(properties)[
            :schema.get("minProperties", 0)]
        return {name: minimal(properties.get(name, {"type": "string"})) for name in names}
    if kind == "array":
        return [minimal(schema.get("items", {"type": "string"}))
                for _ in range(schema.get("minItems", 0))]
    if kind == "integer":
        return max(schema.get("minimum", 1), 1)
    if kind == "boolean":
        return False
    if "pattern" in schema:
        return find(st.from_regex(schema["pattern"], fullmatch=True),
                    lambda text: schema.get("minLength", 0) <= len(text)
                    <= schema.get("maxLength", 10**6))
    examples = {"uri": "https://example.org/", "email": "someone@example.org",
                "date": "2030-01-01", "date-time": "2030-01-01T00:00:00Z"}
    return examples.get(schema.get("format", ""), "x" * max(schema.get("minLength", 1), 1))


def call(http, op: Operation, token: str, values: dict[str, Any],
         query: dict[str, Any] | None = None, body_changes: dict[str, Any] | None = None):
    """Call `op` with Hillcrest's `values` in its path and a valid minimal body."""
    path = op.path.format(**values)
    params = {p.name: minimal(p.schema) for p in op.query if p.required}
    params.update(query or {})
    kwargs: dict[str, Any] = {"query_string": params, "headers": api_headers(token)}
    if op.body is not None:
        if op.body_media_type == "application/json":
            body = {**minimal(op.body), **(body_changes or {})}
            Draft202012Validator(op.body).validate(body)
            kwargs["data"] = json.dumps(body)
        else:
            kwargs["data"] = minimal(op.body)
        kwargs["content_type"] = op.body_media_type
    return http.open(API + path, method=op.method, **kwargs)


def test_every_operation_refuses_a_client_without_its_permission(app, http, world):
    tokens = {ADMIN: api_token(http), PORTAL_ADMIN: api_token(http, portal_slug="lakeside")}
    lacking = [(role, op) for op in OPERATIONS for role in tokens
               if op.permission is not None and not actor_of(role, world).can(op.permission)]
    assert lacking, "no operation needs a permission a portal's client lacks"
    failures = []
    for role, op in lacking:
        response = call(http, op, tokens[role],
                        hillcrest_values(world, op.path_params))
        if response.status_code != 403:
            failures.append(f"{role} {op.method} {op.path}: {response.status_code}")
    assert not failures, "\n".join(failures)


def test_a_portals_client_gets_403_or_404_on_everything_of_another_portal(app, http, world):
    own = api_token(http, portal_slug="lakeside")
    admin = api_token(http)
    failures = []
    for op in OPERATIONS:
        values = hillcrest_values(world, op.path_params)
        if op.path_params:
            before = database_state() if op.method != "GET" else None
            response = call(http, op, own, values)
            if response.status_code not in DENIED:
                failures.append(f"{op.method} {op.path}: {response.status_code}")
            if before is not None and database_state() != before:
                failures.append(f"{op.method} {op.path} changed the database")
            if op.method == "GET":
                status = call(http, op, admin, values).status_code
                if status != 200:
                    failures.append(f"admin {op.method} {op.path}: {status} (names nothing)")
        elif op.method == "GET":
            query = {"portal": "hillcrest"} if any(p.name == "portal" for p in op.query) else {}
            for asked in ({}, query):
                response = call(http, op, own, values, query=asked)
                text = response.get_data(as_text=True)
                leaked = [marker for marker in world["markers"] if marker in text]
                if response.status_code not in (200, *DENIED) or leaked:
                    failures.append(f"GET {op.path}?{asked}: {response.status_code} {leaked}")
        elif op.body is not None and "portal" in op.body.get("properties", {}):
            before = database_state()
            response = call(http, op, own, values, body_changes={"portal": "hillcrest"})
            # Naming another portal in a body may also be a wrong value for the field.
            refused_field = response.status_code == 422 and [
                error["field"] for error in response.json.get("errors", [])] == ["portal"]
            if response.status_code not in DENIED and not refused_field:
                failures.append(f"{op.method} {op.path} for hillcrest: {response.status_code}")
            if database_state() != before:
                failures.append(f"{op.method} {op.path} for hillcrest changed the database")
    assert not failures, "\n".join(failures)
