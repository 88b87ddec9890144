"""Portals in the admin console and the admin API: creating them, branding, every login
policy setting with its effect explained, who may change what, CSRF and audit events."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from idp.admin.access import CONSOLE_PORTAL_SLUG, ensure_console_client
from idp.db import db
from idp.models import AuditEvent, Portal
from idp.policy import LoginPolicy
from idp.portals import create_portal, find_portal
from tests.admin_fixtures import (
    api_headers,
    api_token,
    console_form,
    console_sign_in,
    make_staff,
)
from tests.driver import follow_to_client, open_login_page, shows_step, submit_form
from tests.factories import PASSWORD, make_client, make_user

API = "/admin/api/v1"
POLICY_KEYS = list(LoginPolicy().to_stored())


def post(http, path: str, data: dict[str, Any] | None = None):
    """POST a console form with the session's CSRF token."""
    return http.post(path, data={**console_form(http, "/admin/"), **(data or {})})


def edit_form(http, slug: str, **values: Any) -> dict[str, Any]:
    """The portal's edit form as the page fills it in, with `values` typed over it."""
    from tests.html_forms import parse_forms

    page = http.get(f"/admin/portals/{slug}/edit")
    assert page.status_code == 200
    form = parse_forms(page.get_data(as_text=True))[-1]
    data: dict[str, Any] = dict(form.fields)
    body = page.get_data(as_text=True)
    # parse_forms keeps inputs only: add selects and textareas as the browser sends them.
    for name, value in re.findall(r'<textarea id="f-[^"]+" name="([^"]+)"[^>]*>([^<]*)<', body):
        data[name] = value
    data["self_registration"] = re.search(
        r'name="self_registration".*?<option value="([^"]+)" selected', body, re.S).group(1)
    data["mfa_methods"] = re.findall(r'name="mfa_methods" value="([^"]+)" checked', body)
    data.pop("csrf_token", None)
    data.update(values)
    return data


def event(kind: str) -> AuditEvent | None:
    return db.session.scalars(db.select(AuditEvent).filter_by(kind=kind)
                              .order_by(AuditEvent.id.desc())).first()


@pytest.fixture
def portals(app):
    return create_portal("lakeside", "Lakeside MLS"), create_portal("grace", "Grace Church")


@pytest.fixture
def admin(app, http):
    staff = make_staff("admin")
    console_sign_in(http, staff)
    return staff


# -- console: create ----------------------------------------------------------------------


def test_an_admin_creates_a_portal_then_sets_it_up(app, http, admin):
    response = post(http, "/admin/portals/new", {"slug": "hillside", "name": "Hillside MLS"})
    assert response.status_code == 303
    assert response.location.startswith("/admin/portals/hillside/edit")
    assert find_portal("hillside").name == "Hillside MLS"
    created = event("portal.created")
    assert (created.subject, created.actor) == ("hillside", f"admin:{admin.email}")
    listing = http.get("/admin/portals").get_data(as_text=True)
    assert "Hillside MLS" in listing


@pytest.mark.parametrize(("slug", "name", "field", "message"), [
    ("Not A Slug", "Hillside", "slug", "lowercase letters"),
    ("lakeside", "Another Lakeside", "slug", "already exists"),
    ("hillside", "  ", "name", "must not be empty"),
])
def test_creating_a_portal_shows_errors_and_keeps_the_input(
        app, http, admin, portals, slug, name, field, message):
    count = db.session.scalar(db.select(db.func.count()).select_from(Portal))
    response = post(http, "/admin/portals/new", {"slug": slug, "name": name})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert re.search(rf'id="f-{field}-error">[^<]*{message}', body), body
    assert f'value="{slug}"' in body
    assert db.session.scalar(db.select(db.func.count()).select_from(Portal)) == count


# -- console: branding and login policy -------------------------------------------------


def test_the_edit_page_explains_every_login_policy_setting(app, http, admin, portals):
    body = http.get("/admin/portals/lakeside/edit").get_data(as_text=True)
    for key in POLICY_KEYS:
        assert f'name="{key}"' in body, key
        # A label tied to the field, and the effect of the setting beside it.
        assert re.search(rf'id="f-{key}-hint">[^<]{{30,}}', body), key
    assert "everyone signing in to this portal must use a second factor" in body
    for key in ("name", "logo_url", "primary_color", "home_url"):
        assert f'<label for="f-{key}">' in body


def test_saving_the_policy_records_the_keys_that_changed(app, http, admin, portals):
    mfa_from = (date.today() + timedelta(days=30)).isoformat()
    response = post(http, "/admin/portals/lakeside/edit", edit_form(
        http, "lakeside", primary_color="#123456", mfa_required_from=mfa_from,
        mfa_methods=["totp", "webauthn"], trust_periods_hours="12, 168",
        legacy_usernames_retired="yes", self_registration="match_only",
        not_found_message="Ask the office to add you."))
    assert response.status_code == 303, response.get_data(as_text=True)
    portal = find_portal("lakeside")
    policy = portal.policy
    assert portal.primary_color == "#123456"
    assert policy.mfa_required_from == date.fromisoformat(mfa_from)
    assert policy.mfa_methods == ("totp", "webauthn")
    assert policy.trust_periods_hours == (12, 168)
    assert policy.legacy_usernames_retired and policy.self_registration == "match_only"
    assert policy.not_found_message == "Ask the office to add you."
    assert policy.idle_timeout_minutes == LoginPolicy().idle_timeout_minutes  # untouched
    assert event("portal.updated").details["keys"] == [
        "legacy_usernames_retired", "mfa_methods", "mfa_required_from", "not_found_message",
        "primary_color", "self_registration", "trust_periods_hours"]
    # Saving again unchanged records nothing more.
    post(http, "/admin/portals/lakeside/edit", edit_form(http, "lakeside"))
    updates = db.session.scalars(db.select(AuditEvent).filter_by(kind="portal.updated")).all()
    assert len(updates) == 1


@pytest.mark.parametrize(("field", "value", "message"), [
    ("keep_me_signed_in_max_days", "365", "between 1 and 90"),
    ("idle_timeout_minutes", "0", "at least 1"),
    ("session_max_hours", "999999", "at most"),
    ("password_min_length", "6", "between 8 and 64"),
    ("mfa_required_from", "next tuesday", "not a valid value"),
    ("mfa_methods", [], "at least one method"),
    ("trust_periods_hours", "24, forever", "not a valid value"),
    ("primary_color", "blue", "a colour like"),
    ("logo_url", "http://cdn.example/logo.png", "https URL"),
    ("name", "", "must not be empty"),
])
def test_a_wrong_setting_is_explained_beside_its_field_and_nothing_changes(
        app, http, admin, portals, field, value, message):
    typed = "Typed but not saved"
    form = edit_form(http, "lakeside", not_found_message=typed, **{field: value})
    response = post(http, "/admin/portals/lakeside/edit", form)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert re.search(rf'id="f-{field}-error">[^<]*{message}', body), body
    assert typed in body  # what was typed stays
    if isinstance(value, str) and value:
        assert f'value="{value}"' in body
    assert find_portal("lakeside").policy == LoginPolicy()
    assert event("portal.updated") is None


def test_mfa_required_from_the_console_applies_at_the_next_sign_in(app, http, admin, portals):
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    post(http, "/admin/portals/lakeside/edit",
         edit_form(http, "lakeside", mfa_required_from=yesterday))
    rp = make_client(portal_slug="lakeside")
    person = make_user()
    browser = app.test_client()
    page = open_login_page(browser, rp.client.client_id)
    page = follow_to_client(browser, submit_form(browser, page, email=person.email,
                                                 password=PASSWORD))
    assert shows_step(page, "mfa_enroll")
    assert "Skip for now" not in page.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/admin/portals/new", "/admin/portals/lakeside/edit"])
@pytest.mark.parametrize("token", [None, "wrong"])
def test_every_portal_form_needs_the_csrf_token(app, http, admin, portals, path, token):
    data = {"slug": "hillside", "name": "Changed", "idle_timeout_minutes": "5"}
    if token:
        data["csrf_token"] = token
    events = db.session.scalar(db.select(db.func.count()).select_from(AuditEvent))
    assert http.post(path, data=data).status_code == 400
    assert find_portal("hillside") is None
    assert find_portal("lakeside").name == "Lakeside MLS"
    assert find_portal("lakeside").policy == LoginPolicy()
    assert db.session.scalar(db.select(db.func.count()).select_from(AuditEvent)) == events


def test_the_console_portal_is_read_only(app, http, admin):
    ensure_console_client()
    page = http.get(f"/admin/portals/{CONSOLE_PORTAL_SLUG}").get_data(as_text=True)
    assert "cannot be edited here" in page
    assert http.get(f"/admin/portals/{CONSOLE_PORTAL_SLUG}/edit").status_code == 403
    assert post(http, f"/admin/portals/{CONSOLE_PORTAL_SLUG}/edit",
                {"mfa_required_from": ""}).status_code == 403
    assert find_portal(CONSOLE_PORTAL_SLUG).policy.mfa_required_from is not None


# -- console: roles -----------------------------------------------------------------------


def test_support_sees_portals_but_cannot_change_or_create_them(app, http, portals):
    console_sign_in(http, make_staff("support"))
    assert http.get("/admin/portals").status_code == 200
    page = http.get("/admin/portals/lakeside").get_data(as_text=True)
    assert "Lakeside MLS" in page and "/admin/portals/lakeside/edit" not in page
    assert http.get("/admin/portals/lakeside/edit").status_code == 403
    assert post(http, "/admin/portals/lakeside/edit", {"name": "Taken over"}).status_code == 403
    assert http.get("/admin/portals/new").status_code == 403
    assert post(http, "/admin/portals/new", {"slug": "x", "name": "X"}).status_code == 403
    assert find_portal("lakeside").name == "Lakeside MLS" and find_portal("x") is None


def test_a_portal_admin_sees_and_edits_only_its_own_portal(app, http, portals):
    console_sign_in(http, make_staff("portal_admin", "lakeside"))
    listing = http.get("/admin/portals").get_data(as_text=True)
    assert "Lakeside MLS" in listing and "Grace Church" not in listing
    assert http.get("/admin/portals/grace").status_code == 404
    assert http.get("/admin/portals/grace/edit").status_code == 404
    assert post(http, "/admin/portals/grace/edit", {"name": "Taken over"}).status_code == 404
    assert find_portal("grace").name == "Grace Church"
    assert http.get("/admin/portals/new").status_code == 403
    assert "Create a portal" not in listing
    response = post(http, "/admin/portals/lakeside/edit",
                    edit_form(http, "lakeside", name="Lakeside Realty"))
    assert response.status_code == 303
    assert find_portal("lakeside").name == "Lakeside Realty"


# -- API ----------------------------------------------------------------------------------


def assert_matches(http, response, method: str, path: str) -> None:
    document = http.get(f"{API}/openapi.json").json
    declared = document["paths"][path][method]["responses"][str(response.status_code)]
    schema = next(iter(declared["content"].values()))["schema"]
    errors = list(Draft202012Validator(schema).iter_errors(response.json))
    assert not errors, errors


def test_api_creates_a_portal_with_its_policy(app, http):
    headers = api_headers(api_token(http))
    response = http.post(f"{API}/portals", headers=headers, json={
        "slug": "hillside", "name": "Hillside MLS", "primary_color": "#1f5fbf",
        "policy": {"self_registration": "match_only", "trust_periods_hours": [24],
                   "mfa_required_from": "2030-01-01"}})
    assert response.status_code == 201, response.json
    assert_matches(http, response, "post", "/portals")
    assert response.headers["Location"].endswith("/portals/hillside")
    assert response.json["policy"]["mfa_required_from"] == "2030-01-01"
    assert find_portal("hillside").policy.trust_periods_hours == (24,)
    assert event("portal.created").actor.startswith("client:")
    again = http.post(f"{API}/portals", headers=headers, json={"slug": "hillside", "name": "X"})
    assert again.status_code == 409
    bad = http.post(f"{API}/portals", headers=headers, json={
        "slug": "dale", "name": "Dale", "policy": {"mfa_required_from": "someday"}})
    assert bad.status_code == 422 and bad.json["errors"][0]["field"] == "policy/mfa_required_from"
    assert find_portal("dale") is None


def test_api_changes_branding_and_policy(app, http, portals):
    headers = api_headers(api_token(http))
    response = http.patch(f"{API}/portals/lakeside", headers=headers, json={
        "home_url": "https://lakeside.example/",
        "policy": {"idle_timeout_minutes": 15, "legacy_usernames_retired": True}})
    assert response.status_code == 200, response.json
    assert_matches(http, response, "patch", "/portals/{slug}")
    assert response.json["policy"]["idle_timeout_minutes"] == 15
    assert event("portal.updated").details["keys"] == [
        "home_url", "idle_timeout_minutes", "legacy_usernames_retired"]
    bad = http.patch(f"{API}/portals/lakeside", headers=headers,
                     json={"primary_color": "red", "policy": {"keep_me_signed_in_max_days": 91}})
    assert bad.status_code == 422
    unknown = http.patch(f"{API}/portals/lakeside", headers=headers,
                         json={"policy": {"mfa_required": True}})
    assert unknown.status_code == 422
    assert find_portal("lakeside").policy.idle_timeout_minutes == 15
    assert http.get(f"{API}/portals/nowhere", headers=headers).status_code == 404
    listing = http.get(f"{API}/portals", headers=headers)
    assert_matches(http, listing, "get", "/portals")
    assert [p["slug"] for p in listing.json["items"]] == ["grace", "lakeside"]
    ensure_console_client()
    console = http.patch(f"{API}/portals/{CONSOLE_PORTAL_SLUG}", headers=headers,
                         json={"policy": {"mfa_required_from": None}})
    assert console.status_code == 403


def test_a_portal_api_client_sees_only_its_portal(app, http, portals):
    headers = api_headers(api_token(http, portal_slug="lakeside"))
    listing = http.get(f"{API}/portals", headers=headers).json
    assert [p["slug"] for p in listing["items"]] == ["lakeside"]
    assert http.get(f"{API}/portals/grace", headers=headers).status_code == 404
    assert http.patch(f"{API}/portals/grace", headers=headers,
                      json={"name": "Taken over"}).status_code == 404
    assert http.post(f"{API}/portals", headers=headers,
                     json={"slug": "mine", "name": "Mine"}).status_code == 403
    assert find_portal("grace").name == "Grace Church" and find_portal("mine") is None
    own = http.patch(f"{API}/portals/lakeside", headers=headers, json={"name": "Lakeside"})
    assert own.status_code == 200 and own.json["name"] == "Lakeside"
