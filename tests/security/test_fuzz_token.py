"""Property tests of the token endpoint: whatever the request, an OAuth error in JSON.

hypothesis draws the form (grant_type, code, redirect_uri, code_verifier, refresh_token,
client_id, client_secret, scope, client_assertion_type, client_assertion) from good values,
near misses and junk (tests/security/test_fuzz_authorize.py), and the client's
Authorization header from good credentials and malformed ones: bad base64, no colon, bytes
that are not UTF-8, unicode, other schemes, huge. Good codes and refresh tokens are real
ones, minted for the example that draws them, so requests that pass every check reach the
grant. Properties:

- never a 5xx, never a stack trace or exception text;
- a JSON object: tokens with `Cache-Control: no-store` (RFC 6749 5.1), or an error code of
  RFC 6749 5.2; a client that sent HTTP Basic credentials and failed gets 401 with
  `WWW-Authenticate` (RFC 6749 5.2), and throttled clients 429 with `Retry-After`.

The throttle's counters are cleared before each example: an example's failures must not
turn the next one into a 429 (throttling has its own tests, tests/test_brute_force.py).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete

from idp.db import db
from idp.models.throttle import ThrottleCounter
from idp.oidc.client_auth import basic_credentials
from tests.browser.conftest import LiveIdP, idp_host_name, live_idp  # noqa: F401
from tests.driver import authorize, exchange_code, pkce_pair, query_of, sign_in
from tests.factories import REDIRECT_URI, make_client, make_user
from tests.security.test_fuzz_authorize import (
    FUZZ,
    JUNK,
    LIVE_FUZZ,
    Parameter,
    Value,
    assert_clean,
    encode,
)

ERRORS = {"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
          "unsupported_grant_type", "invalid_scope"}  # RFC 6749 5.2
VERIFIER, CHALLENGE = pkce_pair()
PUBLIC_REDIRECT_URI = "https://app.example.org/callback"
# Stand-ins drawn by hypothesis, replaced by real values when the example runs.
CODE, REFRESH_TOKEN = "<a fresh code>", "<a fresh refresh token>"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class Client:
    client_id: str
    secret: str | None
    redirect_uri: str


def authorization_headers(clients: list[Client]) -> st.SearchStrategy[str | None]:
    """Good Basic credentials of each client, and the ways a header can be wrong."""
    good = [f"Basic {b64(f'{c.client_id}:{c.secret}'.encode())}" for c in clients if c.secret]
    someone = clients[0].client_id
    malformed = [
        "Basic", "Basic ", "Basic !!!!", "Basic ====", "Basic " + b64(b"no colon"),
        "Basic " + b64(b":"), "Basic " + b64(f"{someone}:".encode()),
        "Basic " + b64(f"{someone}:wrong secret".encode()),
        "Basic " + b64(b"\xff\xfe:\x80"), "Basic " + b64("clïent:sécret ✓".encode()),
        "Basic " + b64(f"{someone}:{'x' * 5000}".encode()), "Basic " + "A" * 20_000,
        good[0].replace("Basic", "basic") if good else "basic", "Bearer abc", "Digest x",
        # A header of raw UTF-8 bytes, as a WSGI server passes it on (latin-1 decoded).
        "Basic " + "ü✓".encode().decode("latin-1"),
        "Basic " + good[0][6:-2] if good else "Basic x",  # cut short: bad padding
    ]
    return st.one_of(st.none(), st.sampled_from(good), st.sampled_from(malformed),
                     st.text(max_size=30).map(lambda text: text.encode().decode("latin-1")))


def forms(clients: list[Client]) -> st.SearchStrategy[tuple[Client, list[tuple[str, Value]]]]:
    """The client a request is about, and its form fields."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[Client, list[tuple[str, Value]]]:
        client = draw(st.sampled_from(clients))
        others = tuple(c.client_id for c in clients if c is not client)
        table = {
            "grant_type": Parameter(
                ("authorization_code", "refresh_token", "client_credentials"),
                ("password", "implicit", "AUTHORIZATION_CODE", "token",
                 "urn:ietf:params:oauth:grant-type:jwt-bearer",
                 "urn:ietf:params:oauth:grant-type:device_code"), core=True),
            "code": Parameter((CODE,), ("", "a" * 1000, CODE + "x")),
            "redirect_uri": Parameter((client.redirect_uri,), (
                REDIRECT_URI + "/", PUBLIC_REDIRECT_URI, "https://attacker.example/callback")),
            "code_verifier": Parameter((VERIFIER,), (VERIFIER[:42], "a" * 129, CHALLENGE)),
            "refresh_token": Parameter((REFRESH_TOKEN,), ("", "r" * 5000)),
            "client_id": Parameter((client.client_id,), others),
            "client_secret": Parameter((client.secret or "",), ("wrong", "")),
            "scope": Parameter(("openid", "openid offline_access"), ("admin", "openid admin")),
            "client_assertion_type": Parameter(
                (), ("urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "x")),
            "client_assertion": Parameter((), ("a.b.c", "eyJhbGciOiJub25lIn0.e30.", "x" * 9000)),
        }
        pairs: list[tuple[str, Value]] = []
        for name, parameter in table.items():
            value = parameter.value(draw)
            if value is None:
                continue
            pairs.append((name, value))
            if draw(st.integers(0, 39)) == 17:  # now and then a duplicate
                pairs.append((name, draw(st.one_of(st.sampled_from(parameter.good or ("",)),
                                                   JUNK))))
        return client, draw(st.permutations(pairs))

    return build()


def assert_token_response(status: int, headers: Any, body: str,
                          authorization: str | None) -> None:
    """The properties above, for one answer of /token."""
    assert_clean(status, body)
    assert headers.get("Content-Type", "").startswith("application/json"), (status, body[:300])
    answer = json.loads(body)
    assert isinstance(answer, dict), body[:300]
    if status == 200:
        assert answer.get("access_token") and answer.get("token_type") == "Bearer", answer
        assert "no-store" in headers.get("Cache-Control", ""), headers
        return
    assert answer.get("error") in ERRORS, (status, answer)
    if status == 429:
        assert int(headers["Retry-After"]) >= 1
        return
    assert status in (400, 401), (status, answer)
    if answer["error"] == "invalid_client" and all(basic_credentials({
            "Authorization": authorization})):
        assert status == 401 and headers.get("WWW-Authenticate"), (status, answer, authorization)


# -- the test client ---------------------------------------------------------------------------


@pytest.fixture
def clients(app: Flask) -> list[Client]:
    """A confidential client, a public one (PKCE) and a service (client_credentials)."""
    rp = make_client(scopes=["openid", "offline_access"])
    public = make_client(public=True, redirect_uris=[PUBLIC_REDIRECT_URI],
                         scopes=["openid", "offline_access"])
    service = make_client(grant_types=["client_credentials"], redirect_uris=[],
                          scopes=["openid"])
    return [Client(rp.client.client_id, rp.client_secret, REDIRECT_URI),
            Client(public.client.client_id, None, PUBLIC_REDIRECT_URI),
            Client(service.client.client_id, service.client_secret, "")]


class Minter:
    """Real codes and refresh tokens, on demand, from one signed-in browser."""

    def __init__(self, app: Flask, clients: list[Client]) -> None:
        self.browser = app.test_client()
        user = make_user()
        sign_in(self.browser, clients[0].client_id, user.email, code_challenge=CHALLENGE,
                code_challenge_method="S256")

    def code(self, client: Client) -> str:
        if not client.redirect_uri:
            return "no-code-for-a-service"
        response = authorize(self.browser, client.client_id, redirect_uri=client.redirect_uri,
                             scope="openid offline_access", code_challenge=CHALLENGE,
                             code_challenge_method="S256")
        return query_of(response.location)["code"]

    def refresh_token(self, client: Client) -> str:
        if not client.redirect_uri:
            return "no-refresh-token-for-a-service"
        response = exchange_code(self.browser, self.code(client), client.client_id,
                                 client.secret, VERIFIER, client.redirect_uri)
        return str(response.json["refresh_token"])  # type: ignore[index]


def resolve(pairs: list[tuple[str, Value]], client: Client,
            minter: Minter) -> list[tuple[str, Value]]:
    """Replace the stand-ins by real values minted for this example."""
    real: dict[str, Callable[[Client], str]] = {CODE: minter.code,
                                                REFRESH_TOKEN: minter.refresh_token}
    resolved: list[tuple[str, Value]] = []
    for name, value in pairs:
        if isinstance(value, str):
            for stand_in, make in real.items():
                if stand_in in value:
                    value = value.replace(stand_in, make(client))
        resolved.append((name, value))
    return resolved


def forget_failures() -> None:
    db.session.execute(delete(ThrottleCounter))
    db.session.commit()


def test_token_requests_get_json_errors_of_rfc_6749(app: Flask, clients: list[Client]) -> None:
    minter = Minter(app, clients)
    http: FlaskClient = app.test_client()

    @FUZZ
    @given(request=forms(clients), authorization=authorization_headers(clients))
    def run(request: tuple[Client, list[tuple[str, Value]]], authorization: str | None) -> None:
        client, pairs = request
        forget_failures()
        headers = {"Authorization": authorization} if authorization is not None else {}
        response = http.post("/token", data=encode(resolve(pairs, client, minter)),
                             headers=headers, content_type="application/x-www-form-urlencoded")
        assert_token_response(response.status_code, response.headers,
                              response.get_data(as_text=True), authorization)
        db.session.rollback()

    run()


# -- over real HTTP ---------------------------------------------------------------------------


def test_token_requests_over_http_get_json_errors_of_rfc_6749(live_idp: LiveIdP) -> None:  # noqa: F811
    with live_idp.app.app_context():
        rp = make_client()
        assert rp.client_secret is not None
        clients = [Client(rp.client.client_id, rp.client_secret, REDIRECT_URI)]
        db.session.remove()
    token_url = f"{live_idp.url}/token"

    @LIVE_FUZZ
    @given(request=forms(clients), authorization=authorization_headers(clients))
    def run(request: tuple[Client, list[tuple[str, Value]]], authorization: str | None) -> None:
        _, pairs = request
        with live_idp.app.app_context():
            forget_failures()
            db.session.remove()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if authorization is not None:
            headers["Authorization"] = authorization
        # Stand-ins stay as they are: over HTTP only the shape of the answers is in question.
        response = requests.post(token_url, data=encode(pairs).encode(), timeout=30,
                                 headers={k: v.encode("latin-1") for k, v in headers.items()})
        assert_token_response(response.status_code, response.headers, response.text,
                              authorization)

    run()
