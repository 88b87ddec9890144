"""Staff for the admin console and API tests: people with roles, signed in the real way.

`console_sign_in(http, staff)` goes through /admin/sign-in -> /authorize (the built-in
console client) -> password -> TOTP -> /admin/callback, as a browser would.
`api_token(...)` is a client-credentials access token with scope idp:admin.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from idp.admin.access import grant_role
from idp.clients import register_client
from idp.models import User
from tests.conftest import ISSUER
from tests.driver import follow_to_client, submit_form, token_request, totp_code
from tests.factories import PASSWORD, make_mfa_method, make_user


@dataclass
class Staff:
    user: User
    totp_secret: str

    @property
    def email(self) -> str:
        return self.user.email


def make_staff(role: str, portal_slug: str | None = None, email: str | None = None) -> Staff:
    """A person holding `role` (portal_admin of `portal_slug`), with an authenticator app."""
    user = make_user(email)
    secret = make_mfa_method(user, "totp")[1]
    grant_role(user.email, role, portal_slug, actor="test")
    return Staff(user, secret)


def console_sign_in(http: FlaskClient, staff: Staff, next_path: str = "/admin/") -> None:
    """Sign `staff` in to the console through the hosted sign-in with TOTP."""
    page = follow_to_client(http, http.get("/admin/sign-in", query_string={"next": next_path}))
    page = follow_to_client(http, submit_form(http, page, email=staff.email, password=PASSWORD))
    page = follow_to_client(http, submit_form(http, page, code=totp_code(staff.totp_secret),
                                              trust_hours="0"))
    page = follow_console(http, page)
    assert page.status_code == 200 and page.request.path.startswith("/admin"), \
        page.get_data(as_text=True)[:300]


def follow_console(http: FlaskClient, response: TestResponse) -> TestResponse:
    """Follow the authorization response back to /admin/callback (an absolute issuer URL)."""
    for _ in range(5):
        if response.status_code not in (302, 303):
            return response
        location = response.location
        if location.startswith(ISSUER):
            location = location[len(ISSUER):]
        if not location.startswith("/"):
            return response
        response = http.get(location)
    return response


def console_form(http: FlaskClient, path: str) -> dict[str, str]:
    """The CSRF token of the signed-in console session, for posting console forms."""
    http.get(path)
    with http.session_transaction() as session:
        return {"csrf_token": session["csrf_token"]}


def api_client(portal_slug: str | None = None) -> tuple[str, str]:
    """(client_id, secret) of a client that may ask for scope idp:admin."""
    new = register_client(name="Admin API client", redirect_uris=[],
                          grant_types=["client_credentials"], scopes=["idp:admin"],
                          portal_slug=portal_slug)
    assert new.client_secret is not None
    return new.client.client_id, new.client_secret


def api_token(http: FlaskClient, portal_slug: str | None = None) -> str:
    """A bearer token for the admin API (as admin, or portal_admin of `portal_slug`)."""
    client_id, secret = api_client(portal_slug)
    response = token_request(http, {"grant_type": "client_credentials", "scope": "idp:admin"},
                             client_id, secret)
    assert response.status_code == 200, response.get_data(as_text=True)
    return str(response.json["access_token"])


def api_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_documented(http: FlaskClient, response: TestResponse, method: str,
                      path: str) -> None:
    """`response` is one the OpenAPI document declares for `method path` (a template such
    as "/portals/{slug}/contacts"): its status, media type and body schema."""
    from jsonschema import Draft202012Validator

    document = http.get("/admin/api/v1/openapi.json").json
    declared = document["paths"][path][method.lower()]["responses"]
    assert str(response.status_code) in declared, (response.status_code, sorted(declared))
    content = declared[str(response.status_code)].get("content")
    if content is None:
        assert not response.get_data(), response.get_data(as_text=True)[:300]
        return
    [(media_type, entry)] = content.items()
    assert response.mimetype == media_type
    Draft202012Validator(entry["schema"],
                         format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
        response.json)
