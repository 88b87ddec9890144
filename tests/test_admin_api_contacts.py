"""Admin API, contacts: a portal's directory over /admin/api/v1, with real bearer tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from idp import create_app
from idp.admin.access import CONSOLE_PORTAL_SLUG, ensure_console_client
from idp.contacts import link_contact
from idp.db import db
from idp.models import AuditEvent, Contact
from idp.portals import create_portal
from tests.admin_fixtures import api_client, api_headers, api_token, assert_documented
from tests.conftest import make_settings
from tests.databases import TemplateDatabase
from tests.driver import token_request
from tests.factories import make_user
from tests.live import serve

API = "/admin/api/v1"
CSV = "text/csv"
DIRECTORY = ("contact_id,email,name,phone\n"
             "G-1,Ruth.Walker@Example.com,Ruth Walker,+1 555 0100\n"
             "G-2,ben@example.com,Ben Okafor,\n"
             "G-3,not-an-email,Someone,\n")


@pytest.fixture
def portal(app):
    return create_portal("grace", "Grace Church Ministry")


@pytest.fixture
def other_portal(app):
    return create_portal("lakeside", "Lakeside MLS")


@pytest.fixture
def admin(http):
    return api_headers(api_token(http))


def import_csv(http, headers, text, slug="grace"):
    return http.post(f"{API}/portals/{slug}/contacts/import", data=text.encode(),
                     content_type=CSV, headers=headers)


def stored_ids(portal) -> list[str]:
    return sorted(db.session.execute(
        db.select(Contact.external_id).filter_by(portal_id=portal.id)).scalars())


# -- import ---------------------------------------------------------------------------------


def test_import_reports_each_bad_row_and_imports_the_rest(http, portal, admin):
    response = import_csv(http, admin, DIRECTORY)
    assert response.status_code == 200
    assert response.json == {"created": 2, "updated": 0, "unchanged": 0, "errors": [
        {"row": 4, "message": "email: not a valid address: 'not-an-email'"}]}
    assert_documented(http, response, "POST", "/portals/{slug}/contacts/import")
    assert stored_ids(portal) == ["G-1", "G-2"]


def test_import_again_changes_nothing_and_an_edit_updates(http, portal, admin):
    import_csv(http, admin, DIRECTORY)
    assert import_csv(http, admin, DIRECTORY).json["unchanged"] == 2
    edited = DIRECTORY.replace("Ben Okafor", "Benjamin Okafor")
    report = import_csv(http, admin, edited).json
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 1, 1)


def test_import_is_recorded_in_the_audit_log_with_the_client_as_actor(http, portal):
    client_id, secret = api_client()
    token = token_request(http, {"grant_type": "client_credentials", "scope": "idp:admin"},
                          client_id, secret).json["access_token"]
    import_csv(http, api_headers(token), DIRECTORY)
    event = db.session.execute(
        db.select(AuditEvent).filter_by(kind="contacts.imported")).scalar_one()
    assert event.actor == f"client:{client_id}"
    assert event.portal == "grace"
    assert event.details == {"created": 2, "updated": 0, "unchanged": 0, "rejected": 1}


@pytest.mark.parametrize(("body", "content_type", "status", "fragment"), [
    ("", CSV, 422, "the file is empty"),
    ("email,name\nx@example.com,X\n", CSV, 422, "no contact_id column"),
    ("contact_id,email\nG-1,\"" + "x" * 200_000 + "\"\n", CSV, 422, "not a valid CSV"),
    (b"contact_id,email\nG-1,caf\xe9@example.com\n", CSV, 422, "not UTF-8"),
    ("contact_id,email\nG-1,x@example.com\n", "application/json", 415, "text/csv"),
], ids=["empty", "no-contact-id", "field-too-long", "latin-1", "json"])
def test_a_file_that_cannot_be_imported_is_a_problem_document(
        http, portal, admin, body, content_type, status, fragment):
    data = body if isinstance(body, bytes) else body.encode()
    response = http.post(f"{API}/portals/grace/contacts/import", data=data,
                         content_type=content_type, headers=admin)
    assert response.status_code == status, response.json
    assert response.mimetype == "application/problem+json"
    assert response.json["status"] == status
    assert fragment in response.json["detail"]
    if status == 422:
        assert response.json["errors"][0]["field"] == "(body)"
    assert_documented(http, response, "POST", "/portals/{slug}/contacts/import")
    assert stored_ids(portal) == []


def test_a_body_over_one_mebibyte_is_refused(http, portal, admin):
    body = "contact_id,email\n" + "G-1,x@example.com\n" * 60_000
    response = import_csv(http, admin, body)
    assert response.status_code == 413
    assert_documented(http, response, "POST", "/portals/{slug}/contacts/import")
    assert stored_ids(portal) == []


# -- reading --------------------------------------------------------------------------------


def test_list_is_paged_with_next_and_a_link_header(http, portal, admin):
    import_csv(http, admin, DIRECTORY)
    import_csv(http, admin, "contact_id,email\nG-0,zed@example.com\n")
    first = http.get(f"{API}/portals/grace/contacts?per_page=2", headers=admin)
    assert first.status_code == 200
    assert_documented(http, first, "GET", "/portals/{slug}/contacts")
    assert [c["contact_id"] for c in first.json["items"]] == ["G-0", "G-1"]
    assert first.json["total"] == 3
    next_url = first.json["next"]
    assert first.headers["Link"] == f'<{next_url}>; rel="next"'
    second = http.get(next_url, headers=admin)
    assert [c["contact_id"] for c in second.json["items"]] == ["G-2"]
    assert second.json["next"] is None and "Link" not in second.headers


def test_search_finds_a_contact_by_email_name_or_id(http, portal, admin):
    import_csv(http, admin, DIRECTORY)
    for q, expected in (("ruth.walker", ["G-1"]), ("okafor", ["G-2"]), ("g-", ["G-1", "G-2"]),
                        ("%", [])):
        page = http.get(f"{API}/portals/grace/contacts", query_string={"q": q},
                        headers=admin).json
        assert [c["contact_id"] for c in page["items"]] == expected, q


def test_one_contact_by_its_id(http, portal, admin):
    import_csv(http, admin, DIRECTORY)
    response = http.get(f"{API}/portals/grace/contacts/G-1", headers=admin)
    assert response.status_code == 200
    assert_documented(http, response, "GET", "/portals/{slug}/contacts/{contact_id}")
    assert response.json["email"] == "ruth.walker@example.com"
    assert response.json["phone"] == "+1 555 0100"
    assert response.json["user"] is None
    person = make_user("ruth.walker@example.com")
    contact = db.session.execute(db.select(Contact).filter_by(external_id="G-1")).scalar_one()
    link_contact(contact, person)
    db.session.commit()
    linked = http.get(f"{API}/portals/grace/contacts/G-1", headers=admin).json
    assert linked["user"] == person.sub
    assert linked["preferred_username"] == "ruth.walkerG-1"
    missing = http.get(f"{API}/portals/grace/contacts/G-9", headers=admin)
    assert missing.status_code == 404
    assert_documented(http, missing, "GET", "/portals/{slug}/contacts/{contact_id}")


@pytest.mark.parametrize("query", ["per_page=0", "per_page=201", "page=x", "q="])
def test_bad_query_parameters_are_422_with_the_field(http, portal, admin, query):
    response = http.get(f"{API}/portals/grace/contacts?{query}", headers=admin)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.json["errors"][0]["field"] == query.split("=")[0]
    assert_documented(http, response, "GET", "/portals/{slug}/contacts")


# -- who may --------------------------------------------------------------------------------


def test_no_token_is_401_and_a_token_without_the_admin_scope_is_403(http, portal):
    response = http.get(f"{API}/portals/grace/contacts")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert_documented(http, response, "GET", "/portals/{slug}/contacts")
    client_id, secret = api_client()
    token = token_request(http, {"grant_type": "client_credentials", "scope": "openid"},
                          client_id, secret).json["access_token"]
    response = import_csv(http, api_headers(token), DIRECTORY)
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert stored_ids(portal) == []


def test_a_portal_client_sees_only_its_own_portal(http, portal, other_portal, admin):
    import_csv(http, admin, DIRECTORY)
    lakeside = api_headers(api_token(http, "lakeside"))
    own = import_csv(http, lakeside, "contact_id,email\nL-1,lee@example.com\n", "lakeside")
    assert own.json["created"] == 1
    for response in (
        http.get(f"{API}/portals/grace/contacts", headers=lakeside),
        http.get(f"{API}/portals/grace/contacts/G-1", headers=lakeside),
        import_csv(http, lakeside, "contact_id,email\nG-1,evil@example.com\n"),
    ):
        # The same answer as for a portal that does not exist at all.
        assert response.status_code == 404
        assert response.json["detail"] == "No portal 'grace'."
    assert http.get(f"{API}/portals/nowhere/contacts", headers=lakeside).json["detail"] \
        == "No portal 'nowhere'."
    assert db.session.execute(db.select(Contact.email).filter_by(
        portal_id=portal.id, external_id="G-1")).scalar_one() == "ruth.walker@example.com"


# -- over real HTTP -------------------------------------------------------------------------


def test_a_script_gets_a_token_and_imports_contacts_over_http(tmp_path: Path,
                                                               template_database: TemplateDatabase):
    instance = tmp_path / "instance"
    template_database.copy_to(instance)
    built = {}

    def build(url: str):
        built["app"] = create_app(make_settings(instance, server={"issuer": url}))
        with built["app"].app_context():
            create_portal("grace", "Grace Church Ministry")
            built["client"] = api_client("grace")
        return built["app"]

    with serve(build) as base:
        client_id, secret = built["client"]
        token = requests.post(f"{base}/token", auth=(client_id, secret), timeout=10,
                              data={"grant_type": "client_credentials", "scope": "idp:admin"})
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        response = requests.post(f"{base}{API}/portals/grace/contacts/import", timeout=10,
                                 data=DIRECTORY.encode(),
                                 headers={**headers, "Content-Type": "text/csv; charset=utf-8"})
        assert response.status_code == 200, response.text
        assert response.json()["created"] == 2
        assert response.json()["errors"][0]["row"] == 4
        listed = requests.get(f"{base}{API}/portals/grace/contacts", headers=headers,
                              timeout=10).json()
        assert [c["contact_id"] for c in listed["items"]] == ["G-1", "G-2"]
        assert requests.get(f"{base}{API}/portals/grace/contacts", timeout=10).status_code \
            == 401
    with built["app"].app_context():
        db.engine.dispose()


def test_nothing_is_imported_into_the_admin_consoles_own_portal(http, admin):
    ensure_console_client()
    response = import_csv(http, admin, DIRECTORY, slug=CONSOLE_PORTAL_SLUG)
    assert response.status_code == 403
    assert_documented(http, response, "POST", "/portals/{slug}/contacts/import")
    assert db.session.execute(db.select(Contact)).first() is None
