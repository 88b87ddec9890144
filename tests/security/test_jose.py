"""JOSE attacks on every token the IdP verifies that comes from outside.

The IdP verifies two kinds of JWT it did not just make itself:

- `id_token_hint` (at /authorize and at /logout): an ID token it signed earlier; a forged
  one must neither pick the subject nor sign the victim out without a confirmation;
- `private_key_jwt` client assertions at /token: signed by the client's registered key.

It verifies no back-channel logout token: it only sends them. Each forgery is one
test: `alg: none`, HS256 keyed with the public key (algorithm confusion, with the PEM and
with the JWK), the attacker's own key offered in a `jwk`, `jku` or `x5u` header, an unknown
`crit` extension (on an otherwise valid signature), an oversized token. Each has a control
test that shows the genuine token is accepted, so a refusal means what it says.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from joserfc.jwk import RSAKey

from tests.driver import (
    assertion_form,
    authorization_params,
    b64url,
    client_assertion,
    exchange_code,
    hs256_jwt,
    pkce_pair,
    query_of,
    unsigned_jwt,
)
from tests.factories import make_client
from tests.security.conftest import (
    ATTACKER,
    POST_LOGOUT_REDIRECT_URI,
    LiveClient,
    LiveIdP,
    signed_in,
)

FORGERIES = ["alg-none", "hs256-keyed-with-the-public-key-pem",
             "hs256-keyed-with-the-public-jwk", "attacker-key-in-jwk-header",
             "attacker-key-by-jku-header", "attacker-key-by-x5u-header",
             "unknown-crit-extension", "oversized"]


def rs256(key: RSAKey, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A JWS signed by `key` exactly as given (joserfc refuses to write unknown `crit`)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = key.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def forge(kind: str, claims: dict[str, Any], genuine: RSAKey, attacker: RSAKey) -> str:
    """A token of `claims` forged the way `kind` says. `genuine` is the key the verifier
    trusts (its public half is public; its private half signs only `crit` and `oversized`,
    whose refusal must not depend on the signature); `attacker` carries the same kid."""
    kid = genuine.kid
    public_jwk = genuine.as_dict(private=False)
    if kind == "alg-none":
        return unsigned_jwt(claims)
    if kind == "hs256-keyed-with-the-public-key-pem":
        return hs256_jwt(claims, genuine.as_pem(private=False), {"alg": "HS256", "kid": kid})
    if kind == "hs256-keyed-with-the-public-jwk":
        return hs256_jwt(claims, json.dumps(public_jwk).encode(), {"alg": "HS256", "kid": kid})
    if kind == "attacker-key-in-jwk-header":
        header = {"alg": "RS256", "kid": kid, "jwk": attacker.as_dict(private=False)}
        return rs256(attacker, header, claims)
    if kind == "attacker-key-by-jku-header":
        return rs256(attacker, {"alg": "RS256", "kid": kid, "jku": ATTACKER + "/jwks"}, claims)
    if kind == "attacker-key-by-x5u-header":
        return rs256(attacker, {"alg": "RS256", "kid": kid, "x5u": ATTACKER + "/cert.pem"},
                     claims)
    if kind == "unknown-crit-extension":
        header = {"alg": "RS256", "kid": kid, "crit": ["urn:attacker:skip-checks"],
                  "urn:attacker:skip-checks": True}
        return rs256(genuine, header, claims)
    if kind == "oversized":
        return rs256(genuine, {"alg": "RS256", "kid": kid}, {**claims, "pad": "x" * 20000})
    raise AssertionError(kind)


# -- id_token_hint ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_key(idp: LiveIdP) -> RSAKey:
    """The IdP's signing key (its private half only for `crit` and `oversized`)."""
    with idp.context():
        key = idp.app.extensions["idp"].keys.signing_key("RS256")
    assert isinstance(key, RSAKey)
    published = {k["kid"] for k in idp.client().get("/jwks").json["keys"]}
    assert key.kid in published
    return key


@pytest.fixture(scope="module")
def attacker_key(server_key: RSAKey) -> RSAKey:
    return RSAKey.generate_key(2048, private=True, parameters={"kid": server_key.kid})


def id_token_claims(idp: LiveIdP) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": idp.url, "sub": idp.person.sub, "aud": [idp.rp.client_id],
            "iat": now, "exp": now + 600, "auth_time": now}


def genuine_id_token(idp: LiveIdP, browser: LiveClient) -> str:
    verifier, challenge = pkce_pair()
    response = browser.get("/authorize", query_string=authorization_params(
        idp.rp.client_id, code_challenge=challenge, code_challenge_method="S256"))
    code = query_of(response.location)["code"]
    tokens = exchange_code(idp.client(), code, idp.rp.client_id, idp.rp.client_secret, verifier)
    return str(tokens.json["id_token"])


def is_signed_in(idp: LiveIdP, browser: LiveClient) -> bool:
    response = browser.get("/authorize", query_string=authorization_params(
        idp.rp.client_id, prompt="none"))
    return "code" in query_of(response.location)


@pytest.mark.parametrize("kind", FORGERIES)
def test_forged_id_token_hint_at_authorize_is_refused(
        idp: LiveIdP, server_key: RSAKey, attacker_key: RSAKey, kind: str) -> None:
    victim = signed_in(idp)
    hint = forge(kind, id_token_claims(idp), server_key, attacker_key)
    response = victim.get("/authorize", query_string=authorization_params(
        idp.rp.client_id, prompt="none", id_token_hint=hint))
    assert response.status_code in (302, 400), response.status_code
    if response.status_code == 302:  # the error goes to the validated redirect URI
        query = query_of(response.location)
        assert response.location.startswith(idp.rp.redirect_uri + "?")
        assert "code" not in query and query["error"] == "invalid_request"


def test_genuine_id_token_hint_at_authorize_is_accepted(idp: LiveIdP) -> None:
    victim = signed_in(idp)
    hint = genuine_id_token(idp, victim)
    response = victim.get("/authorize", query_string=authorization_params(
        idp.rp.client_id, prompt="none", id_token_hint=hint))
    assert "code" in query_of(response.location)


@pytest.mark.parametrize("kind", FORGERIES)
def test_forged_id_token_hint_at_logout_neither_signs_out_nor_redirects(
        idp: LiveIdP, server_key: RSAKey, attacker_key: RSAKey, kind: str) -> None:
    """A valid hint skips the "Sign out?" confirmation: a forged one must not."""
    victim = signed_in(idp)
    hint = forge(kind, id_token_claims(idp), server_key, attacker_key)
    response = victim.get("/logout", query_string={
        "id_token_hint": hint, "post_logout_redirect_uri": POST_LOGOUT_REDIRECT_URI,
        "state": "attacker"})
    assert response.status_code in (200, 400) and "Location" not in response.headers
    assert is_signed_in(idp, victim)


def test_genuine_id_token_hint_at_logout_signs_out_at_once(idp: LiveIdP) -> None:
    victim = signed_in(idp)
    hint = genuine_id_token(idp, victim)
    response = victim.get("/logout", query_string={
        "id_token_hint": hint, "post_logout_redirect_uri": POST_LOGOUT_REDIRECT_URI})
    assert response.status_code == 302
    assert response.location.startswith(POST_LOGOUT_REDIRECT_URI)
    assert not is_signed_in(idp, victim)


# -- private_key_jwt client assertions ---------------------------------------------------------


@pytest.fixture(scope="module")
def service(idp: LiveIdP) -> tuple[str, RSAKey]:
    """A service client authenticating with private_key_jwt: (client_id, its key)."""
    key = RSAKey.generate_key(2048, private=True, parameters={"kid": "service-key-1"})
    with idp.context():
        client = make_client(grant_types=["client_credentials"], redirect_uris=[],
                             scopes=["reports:read"],
                             jwks={"keys": [key.as_dict(private=False)]})
        client_id = client.client.client_id
    return client_id, key


def assertion_claims(idp: LiveIdP, client_id: str, jti: str) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": client_id, "sub": client_id, "aud": idp.url + "/token", "iat": now,
            "exp": now + 60, "jti": jti}


@pytest.mark.parametrize("kind", FORGERIES)
def test_forged_client_assertion_is_invalid_client(
        idp: LiveIdP, service: tuple[str, RSAKey], kind: str) -> None:
    client_id, key = service
    attacker = RSAKey.generate_key(2048, private=True, parameters={"kid": key.kid})
    assertion = forge(kind, assertion_claims(idp, client_id, f"jti-{kind}"), key, attacker)
    response = idp.client().post("/token", data={"grant_type": "client_credentials",
                                                 **assertion_form(assertion)})
    assert response.status_code in (400, 401), response.status_code
    assert response.json["error"] == "invalid_client"
    assert "access_token" not in response.text


def test_genuine_client_assertion_is_accepted(idp: LiveIdP, service: tuple[str, RSAKey]) -> None:
    client_id, key = service
    assertion = client_assertion(key, client_id, audience=idp.url + "/token")
    response = idp.client().post("/token", data={"grant_type": "client_credentials",
                                                 **assertion_form(assertion)})
    assert response.status_code == 200 and response.json["access_token"]


def test_forgeries_are_well_formed(idp: LiveIdP, server_key: RSAKey, attacker_key: RSAKey) -> None:
    """The forgeries are what they claim: the attacker-signed ones carry a valid signature
    of the attacker's key (a verifier that trusted the header's key would accept them)."""
    claims = id_token_claims(idp)
    for kind in ("attacker-key-in-jwk-header", "attacker-key-by-jku-header",
                 "attacker-key-by-x5u-header"):
        header, payload, signature = forge(kind, claims, server_key, attacker_key).split(".")
        attacker_key.public_key.verify(  # raises InvalidSignature otherwise
            base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)),
            f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
