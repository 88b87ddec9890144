"""PKCE attacks (RFC 7636, RFC 9700 2.1.1 and 4.8): a stolen code is worth nothing.

The victim is signed in, so /authorize answers at once; the attacker holds the code
(intercepted on its way to the client) but not the verifier the client made.
"""

from __future__ import annotations

import pytest

from tests.driver import authorization_params, exchange_code, pkce_pair, query_of
from tests.security.conftest import LiveClient, LiveIdP, Registered, signed_in


@pytest.fixture(scope="module")
def victim(idp: LiveIdP) -> LiveClient:
    return signed_in(idp)


def clients(idp: LiveIdP) -> dict[str, Registered]:
    return {"public": idp.public, "confidential": idp.rp}


def authorize_query(browser: LiveClient, client: Registered, **params: str) -> dict[str, str]:
    """What the client's redirect URI receives from /authorize (a code or an error)."""
    response = browser.get("/authorize", query_string=authorization_params(
        client.client_id, redirect_uri=client.redirect_uri, **params))
    assert response.status_code == 302, response.text[:300]
    assert response.location.startswith(client.redirect_uri + "?")
    return query_of(response.location)


def code_for(browser: LiveClient, client: Registered, **params: str) -> str:
    query = authorize_query(browser, client, **params)
    assert "code" in query, query
    return query["code"]


def test_public_client_without_a_code_challenge_gets_no_code(
        idp: LiveIdP, victim: LiveClient) -> None:
    query = authorize_query(victim, idp.public)
    assert "code" not in query and query["error"] == "invalid_request"


@pytest.mark.parametrize("kind", ["public", "confidential"])
@pytest.mark.parametrize("method", ["plain", None], ids=["plain", "method-omitted"])
def test_plain_code_challenge_method_is_refused(
        idp: LiveIdP, victim: LiveClient, kind: str, method: str | None) -> None:
    """`plain` (also by default, when the method is left out) would put the verifier in
    the browser's URL: refused before any code is made."""
    verifier, _ = pkce_pair()
    params = {"code_challenge": verifier}
    if method:
        params["code_challenge_method"] = method
    query = authorize_query(victim, clients(idp)[kind], **params)
    assert "code" not in query and query["error"] == "invalid_request"


def test_downgrade_verifier_without_a_challenge_is_refused(
        idp: LiveIdP, victim: LiveClient) -> None:
    """A code issued without a challenge does not accept a verifier at /token (RFC 9700
    4.8.2): an attacker who injects such a code cannot pass it off as PKCE-protected."""
    code = code_for(victim, idp.rp)  # no code_challenge: allowed for a confidential client
    verifier, _ = pkce_pair()
    response = exchange_code(idp.client(), code, idp.rp.client_id, idp.rp.client_secret,
                             verifier)
    assert response.status_code == 400 and "access_token" not in response.text
    assert response.json["error"] in ("invalid_request", "invalid_grant")


@pytest.mark.parametrize("kind", ["public", "confidential"])
def test_wrong_code_verifier_gets_no_tokens(idp: LiveIdP, victim: LiveClient, kind: str) -> None:
    client = clients(idp)[kind]
    _, challenge = pkce_pair()
    code = code_for(victim, client, code_challenge=challenge, code_challenge_method="S256")
    attackers_verifier, _ = pkce_pair()
    response = exchange_code(idp.client(), code, client.client_id, client.client_secret,
                             attackers_verifier, redirect_uri=client.redirect_uri)
    assert response.status_code == 400 and response.json["error"] == "invalid_grant"
    assert "access_token" not in response.text


@pytest.mark.parametrize("kind", ["public", "confidential"])
def test_missing_code_verifier_gets_no_tokens(idp: LiveIdP, victim: LiveClient,
                                              kind: str) -> None:
    client = clients(idp)[kind]
    _, challenge = pkce_pair()
    code = code_for(victim, client, code_challenge=challenge, code_challenge_method="S256")
    response = exchange_code(idp.client(), code, client.client_id, client.client_secret,
                             redirect_uri=client.redirect_uri)
    assert response.status_code == 400 and response.json["error"] == "invalid_request"
    assert "access_token" not in response.text


@pytest.mark.parametrize("kind", ["public", "confidential"])
def test_the_clients_own_verifier_gets_the_tokens(idp: LiveIdP, victim: LiveClient,
                                                  kind: str) -> None:
    """The control: the same exchange with the right verifier succeeds."""
    client = clients(idp)[kind]
    verifier, challenge = pkce_pair()
    code = code_for(victim, client, code_challenge=challenge, code_challenge_method="S256")
    response = exchange_code(idp.client(), code, client.client_id, client.client_secret,
                             verifier, redirect_uri=client.redirect_uri)
    assert response.status_code == 200 and response.json["access_token"]
