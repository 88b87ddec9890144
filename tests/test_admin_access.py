"""Signing in to the admin console and authenticating to the admin API."""

from __future__ import annotations

from idp.admin.access import CONSOLE_CLIENT_ID, grant_role, revoke_role
from idp.db import db
from idp.models import AuditEvent
from tests.admin_fixtures import (
    api_client,
    api_headers,
    api_token,
    console_form,
    console_sign_in,
    follow_console,
    make_staff,
)
from tests.driver import follow_to_client, submit_form, token_request, totp_code
from tests.factories import PASSWORD, make_mfa_method, make_user


def test_console_sends_a_visitor_to_sign_in_then_back(app, http):
    staff = make_staff("admin")
    response = http.get("/admin/")
    assert response.status_code == 303
    assert response.location.startswith("/admin/sign-in")
    console_sign_in(http, staff)
    page = http.get("/admin/")
    assert page.status_code == 200
    assert "Administrator" in page.get_data(as_text=True)
    kinds = db.session.execute(db.select(AuditEvent.kind)).scalars().all()
    assert "admin.signin" in kinds


def test_console_sign_in_goes_through_the_hosted_pages_with_mfa(app, http):
    staff = make_staff("support")
    response = http.get("/admin/sign-in")
    assert response.status_code == 303
    assert f"client_id={CONSOLE_CLIENT_ID}" in response.location
    assert "acr_values=urn%3Aportal-idp%3Aacr%3Amfa" in response.location
    page = follow_to_client(http, response)
    page = follow_to_client(http, submit_form(http, page, email=staff.email, password=PASSWORD))
    # Password alone is not enough: the second factor is asked for.
    assert 'name="code"' in page.get_data(as_text=True)
    assert http.get("/admin/").status_code == 303


def test_a_person_without_a_role_is_refused_after_sign_in(app, http):
    user = make_user()
    secret = make_mfa_method(user, "totp")[1]
    page = follow_to_client(http, http.get("/admin/sign-in"))
    page = follow_to_client(http, submit_form(http, page, email=user.email, password=PASSWORD))
    page = follow_console(http, follow_to_client(
        http, submit_form(http, page, code=totp_code(secret), trust_hours="0")))
    assert page.status_code == 403
    assert "no access to the admin console" in page.get_data(as_text=True)
    assert http.get("/admin/").status_code == 303


def test_staff_without_a_second_factor_must_enrol_one(app, http):
    user = make_user()
    grant_role(user.email, "admin")
    page = follow_to_client(http, http.get("/admin/sign-in"))
    page = follow_to_client(http, submit_form(http, page, email=user.email, password=PASSWORD))
    body = page.get_data(as_text=True)
    assert "Authenticator app" in body
    assert "Skip for now" not in body


def test_callback_refuses_a_forged_state(app, http):
    http.get("/admin/sign-in")
    response = http.get("/admin/callback", query_string={"state": "forged", "code": "x"})
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)


def test_sign_out_ends_the_console_and_the_idp_session(app, http):
    staff = make_staff("admin")
    console_sign_in(http, staff)
    response = http.post("/admin/sign-out", data=console_form(http, "/admin/"))
    assert response.status_code == 303
    assert http.get("/admin/").status_code == 303
    # The IdP session is over too: /authorize asks for the password again.
    page = follow_to_client(http, http.get("/admin/sign-in"))
    assert 'name="password"' in page.get_data(as_text=True)


def test_sign_out_needs_the_csrf_token(app, http):
    staff = make_staff("admin")
    console_sign_in(http, staff)
    assert http.post("/admin/sign-out", data={"csrf_token": "wrong"}).status_code == 400
    assert http.get("/admin/").status_code == 200


def test_losing_the_role_ends_console_access(app, http):
    staff = make_staff("admin")
    console_sign_in(http, staff)
    revoke_role(staff.email, "admin")
    assert http.get("/admin/").status_code == 303


def test_next_cannot_leave_the_console(app, http):
    staff = make_staff("admin")
    console_sign_in(http, staff, next_path="https://evil.example/")
    assert http.get("/admin/sign-in?next=//evil.example/").location == "/admin/"


def test_api_needs_a_bearer_token(app, http):
    response = http.get("/admin/api/v1/openapi.json")
    assert response.status_code == 200
    response = http.get("/admin/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.json["status"] == 404


def test_api_token_needs_the_admin_scope(app, http):
    client_id, secret = api_client()
    response = token_request(http, {"grant_type": "client_credentials", "scope": "openid"},
                             client_id, secret)
    token = response.json["access_token"]
    assert "idp:admin" not in response.json.get("scope", "")
    assert token
    assert api_token(http)


def test_openapi_document_is_3_1(app, http):
    document = http.get("/admin/api/v1/openapi.json").json
    assert document["openapi"] == "3.1.0"
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert api_headers("x") == {"Authorization": "Bearer x"}
