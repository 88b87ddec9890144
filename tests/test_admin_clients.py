"""Clients in the admin console and the admin API: who may do what, the secret shown once,
validation, audit events, and per-client token lifetimes at the token endpoint."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft202012Validator

from idp.admin.access import CONSOLE_CLIENT_ID, ensure_console_client
from idp.clients import find_client
from idp.db import db
from idp.models import AuditEvent, Client
from idp.models.client import ClientSecretReveal
from idp.portals import create_portal
from tests.admin_fixtures import (
    api_headers,
    api_token,
    console_form,
    console_sign_in,
    make_staff,
)
from tests.driver import (
    bearer,
    obtain_tokens,
    refresh_tokens,
    token_request,
)
from tests.factories import REDIRECT_URI, make_client, make_user

API = "/admin/api/v1"
SECRET_ON_PAGE = re.compile(r'id="client-secret">([^<]+)<')


def client_form(**values: Any) -> dict[str, Any]:
    """A valid registration form (a confidential portal client), with `values` changed."""
    form: dict[str, Any] = {
        "name": "Lakeside MLS app",
        "portal": "",
        "redirect_uris": "https://mls.example/callback\nhttp://localhost:8080/cb",
        "post_logout_redirect_uris": "https://mls.example/signed-out",
        "backchannel_logout_uri": "https://mls.example/backchannel",
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "scopes": "openid profile email offline_access",
        "first_party": "yes",
        "token_endpoint_auth_method": "client_secret_basic",
        "jwks": "",
        "access_token_lifetime": "",
        "refresh_token_lifetime": "",
    }
    form.update(values)
    return form


def post(http, path: str, data: dict[str, Any] | None = None):
    """POST a console form with the session's CSRF token."""
    return http.post(path, data={**console_form(http, "/admin/"), **(data or {})})


def register(http, **values: Any) -> tuple[str, str | None]:
    """Register through the console; (client_id, secret shown on the next page)."""
    response = post(http, "/admin/clients/new", client_form(**values))
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    client_id = client_id_in(response.location)
    if "/secret/" not in response.location:
        return client_id, None
    page = http.get(response.location)
    found = SECRET_ON_PAGE.search(page.get_data(as_text=True))
    assert found, page.get_data(as_text=True)
    return client_id, found.group(1)


def client_id_in(location: str) -> str:
    """The client id in a console URL, /admin/clients/<id>[/...][?...]."""
    return urlsplit(location).path.split("/admin/clients/")[1].split("/")[0]


def client_credentials(http, client_id: str, secret: str):
    return token_request(http, {"grant_type": "client_credentials"}, client_id, secret)


def kinds() -> list[str]:
    return list(db.session.scalars(db.select(AuditEvent.kind).order_by(AuditEvent.id)))


def event(kind: str) -> AuditEvent:
    return db.session.scalars(db.select(AuditEvent).filter_by(kind=kind)
                              .order_by(AuditEvent.id.desc())).first()


@pytest.fixture
def admin(app, http):
    staff = make_staff("admin")
    console_sign_in(http, staff)
    return staff


@pytest.fixture
def portals(app):
    return create_portal("lakeside", "Lakeside MLS"), create_portal("grace", "Grace Church")


# -- registering, and the secret shown once ---------------------------------------------


def test_admin_registers_a_client_and_sees_its_secret_once(app, http, admin):
    response = post(http, "/admin/clients/new", client_form())
    assert response.status_code == 303 and "/secret/" in response.location
    page = http.get(response.location)
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    secret = SECRET_ON_PAGE.search(page.get_data(as_text=True)).group(1)
    client_id = client_id_in(response.location)
    assert "shown only this once" in page.get_data(as_text=True)
    # The secret works at the token endpoint...
    assert client_credentials(http, client_id, secret).status_code == 200
    # ...and is never shown again: not on reload, not on the client's page.
    again = http.get(response.location)
    assert again.status_code == 410 and secret not in again.get_data(as_text=True)
    details = http.get(f"/admin/clients/{client_id}").get_data(as_text=True)
    assert client_id in details and secret not in details
    assert db.session.scalar(db.select(db.func.count()).select_from(ClientSecretReveal)) == 0
    created = event("client.created")
    assert created.actor == f"admin:{admin.email}" and created.subject == client_id
    assert secret not in str(created.details)


def test_the_stored_client_has_every_setting_of_the_form(app, http, admin, portals):
    client_id, _ = register(http, portal="grace", access_token_lifetime="600",
                            refresh_token_lifetime="86400")
    client = find_client(client_id)
    assert client.portal.slug == "grace"
    assert client.redirect_uris == ["https://mls.example/callback", "http://localhost:8080/cb"]
    assert client.post_logout_redirect_uris == ["https://mls.example/signed-out"]
    assert client.backchannel_logout_uri == "https://mls.example/backchannel"
    assert client.scope == "openid profile email offline_access" and client.first_party
    assert (client.access_token_lifetime, client.refresh_token_lifetime) == (600, 86400)
    listing = http.get("/admin/clients", query_string={"portal": "grace"}).get_data(as_text=True)
    assert "Lakeside MLS app" in listing and client_id in listing and "Grace Church" in listing


def test_a_public_client_gets_no_secret(app, http, admin):
    client_id, secret = register(http, token_endpoint_auth_method="none",
                                 grant_types=["authorization_code", "refresh_token"])
    assert secret is None
    assert find_client(client_id).client_secret_hash is None


def test_another_browser_cannot_open_the_secret_page(app, http, admin):
    response = post(http, "/admin/clients/new", client_form())
    colleague = app.test_client()
    console_sign_in(colleague, make_staff("admin"))
    assert colleague.get(response.location).status_code == 410
    # The one who registered it still sees it (the colleague did not use it up).
    assert http.get(response.location).status_code == 200


def test_the_secret_page_expires_after_ten_minutes(app, http, admin, clock):
    response = post(http, "/admin/clients/new", client_form())
    clock.advance(601)  # within the console session's 30 idle minutes
    assert http.get("/admin/").status_code == 200
    assert http.get(response.location).status_code == 410


@pytest.mark.parametrize(("field", "value", "message"), [
    ("redirect_uris", "http://mls.example/callback", "https URL"),
    ("redirect_uris", "https://mls.example/callback#done", "fragment"),
    ("redirect_uris", "https://*.mls.example/callback", "wildcards"),
    ("redirect_uris", "", "at least one is required"),
    ("post_logout_redirect_uris", "javascript:alert(1)", "https URL"),
    ("backchannel_logout_uri", "com.example.app:/logout", "https URL"),
    ("name", "   ", "must not be empty"),
    ("scopes", 'openid "quoted"', "not a valid scope"),
    ("grant_types", [], "choose at least one"),
    ("access_token_lifetime", "an hour", "whole number of seconds"),
    ("access_token_lifetime", "5", "from 60 to 86400"),
    ("refresh_token_lifetime", "999999999", "from 300"),
    ("token_endpoint_auth_method", "bogus", "unsupported"),
    ("jwks", "{not json", "not valid JSON"),
    ("jwks", '{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', "private key"),
])
def test_registration_shows_each_error_beside_its_field_and_keeps_the_input(
        app, http, admin, field, value, message):
    before = db.session.scalar(db.select(db.func.count()).select_from(Client))
    response = post(http, "/admin/clients/new",
                    client_form(**{"scopes": "openid kept-scope", field: value}))
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert re.search(rf'id="f-{field}-error">[^<]*{re.escape(message)}', body), body
    assert 'aria-invalid="true"' in body
    if field != "scopes":
        assert 'value="openid kept-scope"' in body
    assert db.session.scalar(db.select(db.func.count()).select_from(Client)) == before


def test_private_key_jwt_needs_public_keys(app, http, admin):
    response = post(http, "/admin/clients/new",
                    client_form(token_endpoint_auth_method="private_key_jwt"))
    assert response.status_code == 422
    assert re.search(r'id="f-jwks-error">[^<]*public keys', response.get_data(as_text=True))


def test_private_key_jwt_clients_register_their_public_keys(app, http, admin):
    jwks = ('{"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", '
            '"x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", '
            '"y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}')
    client_id, secret = register(http, token_endpoint_auth_method="private_key_jwt", jwks=jwks)
    assert secret is None
    assert find_client(client_id).jwks["keys"][0]["kid"] == "k1"


# -- editing ------------------------------------------------------------------------------


def test_editing_checks_everything_again_and_records_the_fields_changed(app, http, admin):
    client_id, secret = register(http)
    page = http.get(f"/admin/clients/{client_id}/edit").get_data(as_text=True)
    assert "https://mls.example/callback" in page and 'value="Lakeside MLS app"' in page
    bad = post(http, f"/admin/clients/{client_id}/edit",
               client_form(redirect_uris="https://mls.example/cb#x"))
    assert bad.status_code == 422 and "fragment" in bad.get_data(as_text=True)
    assert find_client(client_id).redirect_uris[0] == "https://mls.example/callback"
    response = post(http, f"/admin/clients/{client_id}/edit",
                    client_form(name="Lakeside MLS", access_token_lifetime="300",
                                redirect_uris="https://mls.example/new-callback"))
    assert response.status_code == 303
    assert response.location.endswith(f"/admin/clients/{client_id}?notice=Saved.")
    client = find_client(client_id)
    assert (client.name, client.access_token_lifetime) == ("Lakeside MLS", 300)
    assert client.redirect_uris == ["https://mls.example/new-callback"]
    assert event("client.updated").details["fields"] == [
        "name", "redirect_uris", "access_token_lifetime"]
    # The secret did not change with the settings.
    assert client_credentials(http, client_id, secret).status_code == 200


def test_moving_a_public_client_to_a_secret_shows_the_new_secret_once(app, http, admin):
    client_id, _ = register(http, token_endpoint_auth_method="none",
                            grant_types=["authorization_code"])
    response = post(http, f"/admin/clients/{client_id}/edit",
                    client_form(token_endpoint_auth_method="client_secret_post",
                                grant_types=["authorization_code", "client_credentials"]))
    assert "/secret/" in response.location
    secret = SECRET_ON_PAGE.search(http.get(response.location).get_data(as_text=True)).group(1)
    granted = http.post("/token", data={"grant_type": "client_credentials",
                                        "client_id": client_id, "client_secret": secret})
    assert granted.status_code == 200


# -- disable, enable, rotate --------------------------------------------------------------


def test_disabling_stops_the_client_and_revokes_its_tokens(app, http, admin):
    client_id, secret = register(http)
    token = client_credentials(http, client_id, secret).json["access_token"]
    response = post(http, f"/admin/clients/{client_id}/disable")
    assert response.status_code == 303
    refused = client_credentials(http, client_id, secret)
    assert refused.status_code == 401 and refused.json["error"] == "invalid_client"
    introspected = http.post("/introspect", data={"token": token},
                             auth=(client_id, secret)).status_code
    assert introspected == 401
    assert "Disabled" in http.get(f"/admin/clients/{client_id}").get_data(as_text=True)
    assert post(http, f"/admin/clients/{client_id}/enable").status_code == 303
    assert client_credentials(http, client_id, secret).status_code == 200
    # A token revoked at disabling stays revoked.
    service = make_client(grant_types=["client_credentials"], redirect_uris=[],
                          scopes=["introspect"])
    active = http.post("/introspect", data={"token": token},
                       auth=(service.client.client_id, service.client_secret)).json
    assert active == {"active": False}
    assert {"client.disabled", "client.enabled"} <= set(kinds())


def test_rotating_the_secret_replaces_it_at_once(app, http, admin):
    client_id, old = register(http)
    response = post(http, f"/admin/clients/{client_id}/rotate-secret")
    assert response.status_code == 303 and "/secret/" in response.location
    page = http.get(response.location)
    assert page.headers["Cache-Control"] == "no-store"
    new = SECRET_ON_PAGE.search(page.get_data(as_text=True)).group(1)
    assert new != old
    assert client_credentials(http, client_id, old).status_code == 401
    assert client_credentials(http, client_id, new).status_code == 200
    assert http.get(response.location).status_code == 410
    rotated = event("client.secret_rotated")
    assert rotated.subject == client_id and new not in str(rotated.details)


def test_the_console_client_cannot_be_edited_or_disabled(app, http, admin):
    ensure_console_client()
    page = http.get(f"/admin/clients/{CONSOLE_CLIENT_ID}").get_data(as_text=True)
    assert "The IdP manages it" in page and "Disable client" not in page
    assert http.get(f"/admin/clients/{CONSOLE_CLIENT_ID}/edit").status_code == 403
    for action in ("disable", "rotate-secret"):
        assert post(http, f"/admin/clients/{CONSOLE_CLIENT_ID}/{action}").status_code == 403
    assert post(http, f"/admin/clients/{CONSOLE_CLIENT_ID}/edit",
                client_form()).status_code == 403
    client = find_client(CONSOLE_CLIENT_ID)
    assert client.disabled_at is None and client.name == "Admin console"
    assert http.get("/admin/").status_code == 200  # still signed in through it


# -- CSRF ---------------------------------------------------------------------------------

FORMS = ["/admin/clients/new", "/admin/clients/{id}/edit", "/admin/clients/{id}/disable",
         "/admin/clients/{id}/enable", "/admin/clients/{id}/rotate-secret"]


@pytest.mark.parametrize("path", FORMS)
@pytest.mark.parametrize("token", [None, "wrong"])
def test_every_client_form_needs_the_csrf_token(app, http, admin, path, token):
    client_id, secret = register(http)
    before = kinds()
    data = client_form(name="Changed")
    if token:
        data["csrf_token"] = token
    response = http.post(path.format(id=client_id), data=data)
    assert response.status_code == 400
    assert kinds() == before
    client = find_client(client_id)
    assert client.name == "Lakeside MLS app" and client.disabled_at is None
    assert client_credentials(http, client_id, secret).status_code == 200


# -- roles --------------------------------------------------------------------------------


def test_support_has_no_client_pages(app, http):
    rp = make_client()
    console_sign_in(http, make_staff("support"))
    client_id = rp.client.client_id
    for path in ("/admin/clients", "/admin/clients/new", f"/admin/clients/{client_id}",
                 f"/admin/clients/{client_id}/edit"):
        assert http.get(path).status_code == 403, path
    count = db.session.scalar(db.select(db.func.count()).select_from(Client))
    for path in ("/admin/clients/new", f"/admin/clients/{client_id}/edit",
                 f"/admin/clients/{client_id}/disable",
                 f"/admin/clients/{client_id}/rotate-secret"):
        assert post(http, path, client_form()).status_code == 403, path
    assert find_client(client_id).disabled_at is None
    assert db.session.scalar(db.select(db.func.count()).select_from(Client)) == count
    assert ">Clients</a>" not in http.get("/admin/").get_data(as_text=True)


def test_a_portal_admin_sees_and_changes_only_its_portals_clients(app, http, portals):
    ours = make_client(name="Lakeside app", portal_slug="lakeside")
    theirs = make_client(name="Grace app", portal_slug="grace")
    global_client = make_client(name="Global app")
    console_sign_in(http, make_staff("portal_admin", "lakeside"))
    listing = http.get("/admin/clients").get_data(as_text=True)
    assert "Lakeside app" in listing
    assert "Grace app" not in listing and "Global app" not in listing
    for other in (theirs, global_client):
        client_id = other.client.client_id
        assert http.get(f"/admin/clients/{client_id}").status_code == 404
        assert http.get(f"/admin/clients/{client_id}/edit").status_code == 404
        assert post(http, f"/admin/clients/{client_id}/disable").status_code == 404
        assert find_client(client_id).disabled_at is None
    # It registers clients for its own portal only: another portal is refused.
    refused = post(http, "/admin/clients/new", client_form(portal="grace", name="Sneaky"))
    assert refused.status_code == 422 and "choose your portal" in refused.get_data(as_text=True)
    refused = post(http, "/admin/clients/new", client_form(portal="", name="Sneaky"))
    assert refused.status_code == 422
    moved = post(http, f"/admin/clients/{ours.client.client_id}/edit",
                 client_form(portal="grace"))
    assert moved.status_code == 422 and find_client(ours.client.client_id).portal.slug == \
        "lakeside"
    assert not db.session.scalars(db.select(Client).filter_by(name="Sneaky")).all()
    form = http.get("/admin/clients/new").get_data(as_text=True)
    assert 'value="lakeside"' in form and 'value="grace"' not in form
    client_id, secret = register(http, portal="lakeside")
    assert find_client(client_id).portal.slug == "lakeside" and secret


# -- per-client token lifetimes ------------------------------------------------------------


def test_the_token_endpoint_uses_the_clients_own_lifetimes(app, http, admin, clock):
    client_id, secret = register(http, access_token_lifetime="120",
                                 refresh_token_lifetime="600", redirect_uris=REDIRECT_URI)
    default_id, default_secret = register(http, name="Default lifetimes")
    assert client_credentials(http, client_id, secret).json["expires_in"] == 120
    assert client_credentials(http, default_id, default_secret).json["expires_in"] == 3600
    person = make_user()
    browser = app.test_client()
    tokens = obtain_tokens(browser, client_id, person.email, secret,
                           scope="openid offline_access")
    assert tokens["expires_in"] == 120
    assert browser.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 200
    clock.advance(121)
    assert browser.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
    refreshed = refresh_tokens(browser, tokens["refresh_token"], client_id, secret)
    assert refreshed.status_code == 200 and refreshed.json["expires_in"] == 120
    clock.advance(600)  # the family's refresh lifetime counts from the first token
    late = refresh_tokens(browser, refreshed.json["refresh_token"], client_id, secret)
    assert late.status_code == 400 and late.json["error"] == "invalid_grant"


# -- the API ------------------------------------------------------------------------------


def schema_of(http, method: str, path: str, status: int) -> dict[str, Any]:
    document = http.get(f"{API}/openapi.json").json
    response = document["paths"][path][method]["responses"][str(status)]
    return next(iter(response["content"].values()))["schema"]


def assert_matches(http, response, method: str, path: str) -> None:
    schema = schema_of(http, method, path, response.status_code)
    errors = list(Draft202012Validator(schema).iter_errors(response.json))
    assert not errors, errors


API_CLIENT = {"name": "Members app", "redirect_uris": ["https://members.example/cb"],
              "grant_types": ["authorization_code", "client_credentials"],
              "access_token_lifetime": 900}


def test_api_registers_a_client_and_returns_its_secret_once(app, http):
    headers = api_headers(api_token(http))
    response = http.post(f"{API}/clients", json=API_CLIENT, headers=headers)
    assert response.status_code == 201, response.json
    assert_matches(http, response, "post", "/clients")
    created = response.json
    assert response.headers["Location"].endswith(f"/clients/{created['client_id']}")
    granted = client_credentials(http, created["client_id"], created["client_secret"])
    assert granted.json["expires_in"] == 900
    shown = http.get(f"{API}/clients/{created['client_id']}", headers=headers)
    assert shown.status_code == 200 and "client_secret" not in shown.json
    assert created["client_secret"] not in shown.get_data(as_text=True)
    assert_matches(http, shown, "get", "/clients/{client_id}")
    assert event("client.created").actor.startswith("client:")


def test_api_refuses_invalid_and_duplicate_clients(app, http):
    headers = api_headers(api_token(http))
    bad = http.post(f"{API}/clients", headers=headers, json={
        **API_CLIENT, "redirect_uris": ["http://members.example/cb"],
        "refresh_token_lifetime": None, "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}})
    assert bad.status_code == 422 and bad.mimetype == "application/problem+json"
    assert {e["field"] for e in bad.json["errors"]} == {"redirect_uris", "jwks"}
    unknown = http.post(f"{API}/clients", headers=headers, json={**API_CLIENT, "secret": "x"})
    assert unknown.status_code == 422
    first = http.post(f"{API}/clients", headers=headers, json={**API_CLIENT, "client_id": "mem"})
    assert first.status_code == 201
    again = http.post(f"{API}/clients", headers=headers, json={**API_CLIENT, "client_id": "mem"})
    assert again.status_code == 409
    assert http.get(f"{API}/clients/no-such-client", headers=headers).status_code == 404
    assert http.patch(f"{API}/clients/no-such-client", headers=headers,
                      json={"name": "x"}).status_code == 404


def test_api_changes_disables_enables_and_rotates(app, http):
    headers = api_headers(api_token(http))
    created = http.post(f"{API}/clients", json=API_CLIENT, headers=headers).json
    path = f"{API}/clients/{created['client_id']}"
    changed = http.patch(path, headers=headers, json={"name": "Members", "scopes": ["openid"]})
    assert changed.status_code == 200 and changed.json["client_secret"] is None
    assert changed.json["scopes"] == ["openid"]
    assert_matches(http, changed, "patch", "/clients/{client_id}")
    assert event("client.updated").details["fields"] == ["name", "scopes"]
    invalid = http.patch(path, headers=headers, json={"redirect_uris": []})
    assert invalid.status_code == 422 and invalid.json["errors"][0]["field"] == "redirect_uris"
    disabled = http.post(f"{path}/disable", headers=headers)
    assert disabled.status_code == 200 and disabled.json["enabled"] is False
    assert client_credentials(http, created["client_id"],
                              created["client_secret"]).status_code == 401
    assert http.post(f"{path}/enable", headers=headers).json["enabled"] is True
    rotated = http.post(f"{path}/rotate-secret", headers=headers)
    assert rotated.status_code == 200
    assert_matches(http, rotated, "post", "/clients/{client_id}/rotate-secret")
    assert client_credentials(http, created["client_id"],
                              created["client_secret"]).status_code == 401
    assert client_credentials(http, created["client_id"],
                              rotated.json["client_secret"]).status_code == 200
    public = http.post(f"{API}/clients", headers=headers, json={
        "name": "SPA", "redirect_uris": ["https://spa.example/cb"],
        "token_endpoint_auth_method": "none"}).json
    assert http.post(f"{API}/clients/{public['client_id']}/rotate-secret",
                     headers=headers).status_code == 409
    ensure_console_client()
    assert http.post(f"{API}/clients/{CONSOLE_CLIENT_ID}/disable",
                     headers=headers).status_code == 403
    assert http.patch(f"{API}/clients/{CONSOLE_CLIENT_ID}", headers=headers,
                      json={"redirect_uris": ["https://evil.example/cb"]}).status_code == 403


def test_api_lists_clients_by_page_and_portal(app, http, portals):
    make_client(name="A", portal_slug="lakeside")
    make_client(name="B", portal_slug="grace")
    make_client(name="C", portal_slug="grace")
    headers = api_headers(api_token(http))
    page = http.get(f"{API}/clients", query_string={"portal": "grace", "per_page": 1},
                    headers=headers)
    assert page.status_code == 200
    assert_matches(http, page, "get", "/clients")
    assert [c["name"] for c in page.json["items"]] == ["B"] and page.json["total"] == 2
    second = http.get(page.json["next"], headers=headers).json
    assert [c["name"] for c in second["items"]] == ["C"] and second["next"] is None


def test_a_portal_api_client_sees_only_its_portals_clients(app, http, portals):
    ours = make_client(name="Lakeside app", portal_slug="lakeside")
    theirs = make_client(name="Grace app", portal_slug="grace")
    headers = api_headers(api_token(http, portal_slug="lakeside"))
    names = {c["name"] for c in http.get(f"{API}/clients", headers=headers).json["items"]}
    assert "Lakeside app" in names and "Grace app" not in names
    assert http.get(f"{API}/clients", query_string={"portal": "grace"},
                    headers=headers).json["items"] == []
    other = f"{API}/clients/{theirs.client.client_id}"
    assert http.get(other, headers=headers).status_code == 404
    assert http.post(f"{other}/disable", headers=headers).status_code == 404
    assert find_client(theirs.client.client_id).disabled_at is None
    elsewhere = http.post(f"{API}/clients", headers=headers,
                          json={**API_CLIENT, "portal": "grace"})
    assert elsewhere.status_code == 422 and elsewhere.json["errors"][0]["field"] == "portal"
    nowhere = http.post(f"{API}/clients", headers=headers, json=API_CLIENT)
    assert nowhere.status_code == 422
    move = http.patch(f"{API}/clients/{ours.client.client_id}", headers=headers,
                      json={"portal": "grace"})
    assert move.status_code == 422
    made = http.post(f"{API}/clients", headers=headers, json={**API_CLIENT, "portal": "lakeside"})
    assert made.status_code == 201 and made.json["portal"] == "lakeside"


def test_api_without_a_token_is_refused(app, http):
    assert http.get(f"{API}/clients").status_code == 401
    assert http.post(f"{API}/clients", json=API_CLIENT).status_code == 401
