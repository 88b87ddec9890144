"""Drive sign-in flows through the Flask test client, the way a browser and an RP would."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.factories import PASSWORD, REDIRECT_URI
from tests.html_forms import parse_forms


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize(http: FlaskClient, client_id: str, **params: Any) -> TestResponse:
    params.setdefault("response_type", "code")
    params.setdefault("redirect_uri", REDIRECT_URI)
    params.setdefault("scope", "openid profile email")
    params.setdefault("state", secrets.token_urlsafe(8))
    params = {k: v for k, v in params.items() if v is not None}
    return http.get("/authorize", query_string={"client_id": client_id, **params})


def submit_form(http: FlaskClient, page: TestResponse, **values: str) -> TestResponse:
    """POST the first form of `page` with its hidden fields plus `values`."""
    form = parse_forms(page.get_data(as_text=True))[0]
    data = {**form.fields, **values}
    return http.post(form.action, data=data)


@dataclass
class Authorized:
    code: str
    state: str | None
    iss: str | None
    location: str


def follow_to_client(http: FlaskClient, response: TestResponse, **step_values: str) -> TestResponse:
    """Follow IdP-internal redirects until the response leaves the IdP or shows a page."""
    for _ in range(10):
        if response.status_code in (302, 303) and response.location.startswith("/"):
            response = http.get(response.location)
            continue
        return response
    raise AssertionError("redirect loop")


def sign_in(
    http: FlaskClient,
    client_id: str,
    email: str,
    password: str = PASSWORD,
    consent: bool = True,
    **params: Any,
) -> Authorized:
    """Authorize, enter credentials (and consent if asked), return the code."""
    response = follow_to_client(http, authorize(http, client_id, **params))
    if response.status_code == 200 and 'name="step" value="password"' in response.get_data(
        as_text=True
    ):
        response = follow_to_client(
            http, submit_form(http, response, email=email, password=password)
        )
    if consent and response.status_code == 200 and 'value="consent"' in response.get_data(
        as_text=True
    ):
        response = follow_to_client(http, submit_form(http, response, action="allow"))
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    query = query_of(response.location)
    assert "code" in query, response.location
    return Authorized(query["code"], query.get("state"), query.get("iss"), response.location)


def exchange_code(
    http: FlaskClient,
    code: str,
    client_id: str,
    client_secret: str | None = None,
    verifier: str | None = None,
    redirect_uri: str = REDIRECT_URI,
) -> TestResponse:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier:
        data["code_verifier"] = verifier
    return token_request(http, data, client_id, client_secret)


def token_request(
    http: FlaskClient, data: dict[str, str], client_id: str, client_secret: str | None
) -> TestResponse:
    """POST /token with client_secret_basic, or as a public client when no secret."""
    if client_secret is None:
        return http.post("/token", data={**data, "client_id": client_id})
    auth = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    return http.post("/token", data=data, headers={"Authorization": f"Basic {auth}"})
