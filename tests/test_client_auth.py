"""Client authentication at the token endpoint (RFC 6749 2.3, OIDC Core 9, RFC 7523)."""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from joserfc.jwk import ECKey, RSAKey

from idp.clock import utcnow
from idp.db import db
from tests.conftest import ISSUER
from tests.driver import (
    assertion_form,
    basic_auth,
    client_assertion,
    hs256_jwt,
    pkce_pair,
    sign_in,
    token_request,
    unsigned_jwt,
)
from tests.factories import REDIRECT_URI, make_client, make_user

RP_KEY = RSAKey.generate_key(2048, private=True, parameters={"kid": "rp-key-1"})
RP_JWKS = {"keys": [RP_KEY.as_dict(private=False)]}
# The attacker's key carries the same kid, so only the signature check can tell them apart.
ATTACKER_KEY = RSAKey.generate_key(2048, private=True, parameters={"kid": "rp-key-1"})
CLIENT_CREDENTIALS = {"grant_type": "client_credentials"}


def make_service_client(**kwargs):
    """A client that can use client_credentials, so each test needs no sign-in."""
    kwargs.setdefault("grant_types", ["client_credentials"])
    kwargs.setdefault("redirect_uris", [])
    kwargs.setdefault("scopes", ["reports:read"])
    return make_client(**kwargs)


def post_token_with_assertion(http, assertion: str, **data: str):
    return http.post("/token", data={**CLIENT_CREDENTIALS, **data, **assertion_form(assertion)})


def assert_invalid_client(response) -> None:
    assert response.status_code in (400, 401), response.status_code
    assert response.json["error"] == "invalid_client"
    assert "access_token" not in response.json


# --- Client secrets ---


def test_wrong_client_secret_in_basic_auth_is_401_invalid_client(http):
    rp = make_service_client()
    response = token_request(http, CLIENT_CREDENTIALS, rp.client.client_id, "not-the-secret")
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"
    # RFC 6749 5.2: a failed Authorization header gets a WWW-Authenticate challenge.
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_wrong_client_secret_in_post_body_is_invalid_client(http):
    rp = make_service_client(auth_method="client_secret_post")
    response = http.post("/token", data={
        **CLIENT_CREDENTIALS, "client_id": rp.client.client_id, "client_secret": "not-the-secret",
    })
    assert_invalid_client(response)


def test_client_secret_post_succeeds_with_the_right_secret(http):
    rp = make_service_client(auth_method="client_secret_post")
    response = http.post("/token", data={
        **CLIENT_CREDENTIALS, "client_id": rp.client.client_id, "client_secret": rp.client_secret,
    })
    assert response.status_code == 200, response.json


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "none"])
def test_unknown_client_is_invalid_client(http, method):
    data = {"grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT_URI}
    if method == "client_secret_basic":
        response = http.post("/token", data=data, headers=basic_auth("no-such-client", "s"))
        assert response.status_code == 401
    elif method == "client_secret_post":
        response = http.post("/token", data={**data, "client_id": "no-such-client",
                                             "client_secret": "s"})
    else:
        response = http.post("/token", data={**data, "client_id": "no-such-client"})
    assert_invalid_client(response)


def test_disabled_client_is_invalid_client(http):
    rp = make_service_client()
    rp.client.disabled_at = utcnow()
    db.session.commit()
    response = token_request(http, CLIENT_CREDENTIALS, rp.client.client_id, rp.client_secret)
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_confidential_client_without_credentials_is_refused_even_with_pkce(http, auth_method):
    # RFC 6749 3.2.1: a confidential client must authenticate; PKCE does not replace that.
    user = make_user()
    rp = make_client(auth_method=auth_method)
    verifier, challenge = pkce_pair()
    result = sign_in(http, rp.client.client_id, user.email, code_challenge=challenge,
                     code_challenge_method="S256")
    response = http.post("/token", data={
        "grant_type": "authorization_code", "code": result.code, "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier, "client_id": rp.client.client_id,
    })
    assert_invalid_client(response)


def test_confidential_client_without_any_client_id_is_refused(http):
    response = http.post("/token", data=CLIENT_CREDENTIALS)
    assert_invalid_client(response)


@pytest.mark.parametrize(
    ("registered", "used"),
    [("client_secret_basic", "client_secret_post"), ("client_secret_post", "client_secret_basic")],
)
def test_client_must_use_its_registered_auth_method(http, registered, used):
    rp = make_service_client(auth_method=registered)
    if used == "client_secret_basic":
        response = token_request(http, CLIENT_CREDENTIALS, rp.client.client_id, rp.client_secret)
    else:
        response = http.post("/token", data={**CLIENT_CREDENTIALS, "client_id": rp.client.client_id,
                                             "client_secret": rp.client_secret})
    assert_invalid_client(response)


# --- private_key_jwt ---


def test_private_key_jwt_authenticates_with_a_signed_assertion(http):
    rp = make_service_client(jwks=RP_JWKS)
    response = post_token_with_assertion(http, client_assertion(RP_KEY, rp.client.client_id))
    assert response.status_code == 200, response.json


@pytest.mark.parametrize("audience", [ISSUER + "/token", ISSUER])
def test_private_key_jwt_accepts_the_token_endpoint_or_issuer_as_audience(http, audience):
    rp = make_service_client(jwks=RP_JWKS)
    assertion = client_assertion(RP_KEY, rp.client.client_id, audience=audience)
    assert post_token_with_assertion(http, assertion).status_code == 200


def test_private_key_jwt_accepts_an_es256_key(http):
    key = ECKey.generate_key("P-256", private=True, parameters={"kid": "ec-1"})
    rp = make_service_client(jwks={"keys": [key.as_dict(private=False)]})
    response = post_token_with_assertion(http, client_assertion(key, rp.client.client_id))
    assert response.status_code == 200, response.json


def forge_assertion(kind: str, client_id: str) -> str:
    """Assertions that must not authenticate `client_id`."""
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": ISSUER + "/token", "iat": now,
              "exp": now + 60, "jti": f"jti-{kind}"}
    if kind == "alg-none":
        return unsigned_jwt(claims)
    if kind == "rs256-header-without-signature":
        return unsigned_jwt(claims, {"alg": "RS256", "kid": RP_KEY.kid})
    if kind == "hs256-keyed-with-the-registered-public-key":
        pem = RP_KEY.as_pem(private=False)
        return hs256_jwt(claims, pem, {"alg": "HS256", "kid": RP_KEY.kid})
    if kind == "wrong-audience":
        return client_assertion(RP_KEY, client_id, audience="https://elsewhere.example.org/token")
    if kind == "expired":
        return client_assertion(RP_KEY, client_id, iat=now - 3600, exp=now - 600)
    if kind == "no-exp":
        return client_assertion(RP_KEY, client_id, exp=None)
    if kind == "no-jti":
        return client_assertion(RP_KEY, client_id, jti=None)
    if kind == "iss-differs-from-sub":
        return client_assertion(RP_KEY, client_id, iss="someone-else")
    if kind == "signed-by-an-unregistered-key":
        return client_assertion(ATTACKER_KEY, client_id)
    if kind == "jwk-header-with-attacker-key":
        header = {"jwk": ATTACKER_KEY.as_dict(private=False)}
        return client_assertion(ATTACKER_KEY, client_id, header=header)
    if kind == "jwk-header-even-with-a-valid-signature":
        return client_assertion(RP_KEY, client_id, header={"jwk": RP_KEY.as_dict(private=False)})
    if kind == "oversized":
        return client_assertion(RP_KEY, client_id, padding="x" * 9000)
    raise AssertionError(kind)


ASSERTION_FORGERIES = [
    "alg-none",
    "rs256-header-without-signature",
    "hs256-keyed-with-the-registered-public-key",
    "wrong-audience",
    "expired",
    "no-exp",
    "no-jti",
    "iss-differs-from-sub",
    "signed-by-an-unregistered-key",
    "jwk-header-with-attacker-key",
    "jwk-header-even-with-a-valid-signature",
    "oversized",
]


@pytest.mark.parametrize("kind", ASSERTION_FORGERIES)
def test_private_key_jwt_refuses_an_invalid_assertion(http, kind):
    rp = make_service_client(jwks=RP_JWKS)
    response = post_token_with_assertion(http, forge_assertion(kind, rp.client.client_id))
    assert_invalid_client(response)


def test_private_key_jwt_refuses_a_reused_jti(http):
    rp = make_service_client(jwks=RP_JWKS)
    assertion = client_assertion(RP_KEY, rp.client.client_id)
    assert post_token_with_assertion(http, assertion).status_code == 200
    assert_invalid_client(post_token_with_assertion(http, assertion))
    fresh_assertion_same_jti = client_assertion(RP_KEY, rp.client.client_id,
                                                jti=_jti_of(assertion))
    assert_invalid_client(post_token_with_assertion(http, fresh_assertion_same_jti))


def _jti_of(assertion: str) -> str:
    payload = assertion.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"])


def post_as_its_own_request(app, path: str, data: dict[str, str]):
    """POST outside the test's app context, so the request has its own database session and
    ends it (rolling back whatever it did not commit), as every request does in production."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: app.test_client().post(path, data=data)).result()


def test_assertion_is_spent_even_when_the_request_it_authenticated_fails(app):
    rp = make_service_client(jwks=RP_JWKS, grant_types=["client_credentials",
                                                        "authorization_code"],
                             redirect_uris=[REDIRECT_URI])
    client_id = rp.client.client_id
    assertion = client_assertion(RP_KEY, client_id)
    failed = post_as_its_own_request(app, "/token", {
        "grant_type": "authorization_code", "code": "not-a-code", "redirect_uri": REDIRECT_URI,
        **assertion_form(assertion),
    })
    assert failed.json["error"] == "invalid_grant"
    replay = post_as_its_own_request(app, "/token", {**CLIENT_CREDENTIALS,
                                                     **assertion_form(assertion)})
    assert_invalid_client(replay)


def test_assertion_used_at_introspection_cannot_be_replayed(app):
    rp = make_service_client(jwks=RP_JWKS)
    assertion = client_assertion(RP_KEY, rp.client.client_id)
    first = post_as_its_own_request(app, "/introspect", {"token": "unknown",
                                                         **assertion_form(assertion)})
    assert first.status_code == 200 and first.json == {"active": False}
    replay = post_as_its_own_request(app, "/introspect", {"token": "unknown",
                                                          **assertion_form(assertion)})
    assert_invalid_client(replay)


def test_assertion_for_a_client_without_registered_keys_is_refused(http):
    rp = make_service_client()  # client_secret_basic, no jwks
    response = post_token_with_assertion(http, client_assertion(RP_KEY, rp.client.client_id))
    assert_invalid_client(response)


def test_assertion_naming_an_unknown_client_is_refused(http):
    response = post_token_with_assertion(http, client_assertion(RP_KEY, "no-such-client"))
    assert_invalid_client(response)


@pytest.mark.parametrize("assertion", ["", "not-a-jwt", "a.b", "a.b.c", "...", "e30.e30.e30"])
def test_malformed_assertion_is_invalid_client(http, assertion):
    make_service_client(jwks=RP_JWKS)
    response = post_token_with_assertion(http, assertion)
    assert_invalid_client(response)


def test_private_key_jwt_client_cannot_fall_back_to_client_id_only(http):
    rp = make_service_client(jwks=RP_JWKS)
    response = http.post("/token", data={**CLIENT_CREDENTIALS, "client_id": rp.client.client_id})
    assert_invalid_client(response)
