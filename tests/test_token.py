"""The token endpoint: code exchange, PKCE, code replay, ID tokens, client_credentials.

Client authentication failures live in test_client_auth.py, refresh in test_refresh.py.
"""

from __future__ import annotations

import hashlib
import time

import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

from idp.clients import ClientRegistrationError
from idp.db import db
from idp.login.transaction import ACR_PASSWORD
from idp.models import AuthorizationCode, IdpSession
from idp.oidc import tokens
from tests.conftest import ISSUER
from tests.driver import (
    assertion_form,
    authorize,
    b64url,
    basic_auth,
    bearer,
    client_assertion,
    endpoint_request,
    exchange_code,
    follow_to_client,
    hs256_jwt,
    obtain_tokens,
    pkce_pair,
    query_of,
    refresh_tokens,
    sign_in,
    token_request,
    unsigned_jwt,
)
from tests.factories import REDIRECT_URI, make_client, make_user

RP_KEY = RSAKey.generate_key(2048, private=True, parameters={"kid": "rp-key-1"})
RP_JWKS = {"keys": [RP_KEY.as_dict(private=False)]}
OTHER_REDIRECT_URI = "https://rp.example.org/other-callback"
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none", "private_key_jwt"]


def register(auth_method: str, **kwargs):
    """A client that authenticates at the token endpoint with `auth_method`."""
    if auth_method == "none":
        return make_client(public=True, **kwargs)
    if auth_method == "private_key_jwt":
        return make_client(jwks=RP_JWKS, **kwargs)
    return make_client(auth_method=auth_method, **kwargs)


def redeem(http, rp, auth_method: str, code: str, verifier: str | None):
    """POST the code to /token, authenticating the way `auth_method` says."""
    client_id = rp.client.client_id
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    if verifier:
        data["code_verifier"] = verifier
    if auth_method == "client_secret_basic":
        return http.post("/token", data=data, headers=basic_auth(client_id, rp.client_secret))
    if auth_method == "client_secret_post":
        data.update(client_id=client_id, client_secret=rp.client_secret)
    elif auth_method == "none":
        data["client_id"] = client_id
    else:
        data.update(assertion_form(client_assertion(RP_KEY, client_id)))
    return http.post("/token", data=data)


def sign_in_with_pkce(http, rp, user, **params):
    verifier, challenge = pkce_pair()
    result = sign_in(http, rp.client.client_id, user.email, code_challenge=challenge,
                     code_challenge_method="S256", **params)
    return result.code, verifier


def server_keys(http) -> KeySet:
    return KeySet.import_key_set(http.get("/jwks").json)


def decode_id_token(http, id_token: str, alg: str):
    """Verify with the published keys and exactly one allowed algorithm."""
    return jwt.decode(id_token, server_keys(http), algorithms=[alg])


def introspect(http, rp, token: str):
    return endpoint_request(http, "/introspect", {"token": token}, rp.client.client_id,
                            rp.client_secret)


# --- Code exchange and client authentication methods ---


@pytest.mark.parametrize("auth_method", AUTH_METHODS)
def test_code_exchange_issues_tokens_for_each_client_auth_method(http, auth_method):
    user = make_user()
    rp = register(auth_method)
    code, verifier = sign_in_with_pkce(http, rp, user, scope="openid email")
    response = redeem(http, rp, auth_method, code, verifier)
    assert response.status_code == 200, response.json
    body = response.json
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "openid email"
    assert {"access_token", "refresh_token", "id_token"} <= set(body)
    # RFC 6749 5.1: token responses must not be cached.
    assert "no-store" in response.headers["Cache-Control"]
    info = http.get("/userinfo", headers=bearer(body["access_token"]))
    assert info.status_code == 200 and info.json["sub"] == user.sub


def test_code_exchange_without_pkce_works_for_a_confidential_client(http):
    user = make_user()
    rp = make_client()
    result = sign_in(http, rp.client.client_id, user.email)
    response = exchange_code(http, result.code, rp.client.client_id, rp.client_secret)
    assert response.status_code == 200, response.json


# --- PKCE (RFC 7636, RFC 9700 2.1.1) ---


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "none"])
def test_missing_code_verifier_is_refused_when_a_challenge_was_sent(http, auth_method):
    user = make_user()
    rp = register(auth_method)
    code, _verifier = sign_in_with_pkce(http, rp, user)
    response = redeem(http, rp, auth_method, code, None)
    assert response.status_code == 400
    assert response.json["error"] in ("invalid_request", "invalid_grant")
    assert "access_token" not in response.json


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "none"])
def test_wrong_code_verifier_is_invalid_grant(http, auth_method):
    user = make_user()
    rp = register(auth_method)
    code, _verifier = sign_in_with_pkce(http, rp, user)
    other_verifier, _challenge = pkce_pair()
    response = redeem(http, rp, auth_method, code, other_verifier)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"


def test_code_verifier_is_refused_when_no_challenge_was_sent(http):
    # RFC 9700 4.8.2: a verifier without a challenge marks a PKCE downgrade attempt.
    user = make_user()
    rp = make_client()
    result = sign_in(http, rp.client.client_id, user.email)
    verifier, _challenge = pkce_pair()
    response = exchange_code(http, result.code, rp.client.client_id, rp.client_secret, verifier)
    assert response.status_code == 400
    assert response.json["error"] in ("invalid_request", "invalid_grant")
    assert "access_token" not in response.json


# --- Code replay, expiry and binding (RFC 6749 4.1.2, 4.1.3) ---


def test_code_replay_fails_and_revokes_the_tokens_issued_from_the_code(http):
    user = make_user()
    rp = make_client()
    code, verifier = sign_in_with_pkce(http, rp, user)
    first = exchange_code(http, code, rp.client.client_id, rp.client_secret, verifier)
    assert first.status_code == 200
    issued = first.json
    assert http.get("/userinfo", headers=bearer(issued["access_token"])).status_code == 200

    replay = exchange_code(http, code, rp.client.client_id, rp.client_secret, verifier)

    assert replay.status_code == 400
    assert replay.json["error"] == "invalid_grant"
    assert http.get("/userinfo", headers=bearer(issued["access_token"])).status_code == 401
    assert introspect(http, rp, issued["access_token"]).json == {"active": False}
    refreshed = refresh_tokens(http, issued["refresh_token"], rp.client.client_id,
                               rp.client_secret)
    assert refreshed.status_code == 400
    assert refreshed.json["error"] == "invalid_grant"


def test_code_replay_also_revokes_tokens_already_rotated_by_refresh(http):
    user = make_user()
    rp = make_client()
    code, verifier = sign_in_with_pkce(http, rp, user)
    first = exchange_code(http, code, rp.client.client_id, rp.client_secret, verifier).json
    rotated = refresh_tokens(http, first["refresh_token"], rp.client.client_id,
                             rp.client_secret).json

    exchange_code(http, code, rp.client.client_id, rp.client_secret, verifier)

    assert http.get("/userinfo", headers=bearer(rotated["access_token"])).status_code == 401
    again = refresh_tokens(http, rotated["refresh_token"], rp.client.client_id, rp.client_secret)
    assert again.json["error"] == "invalid_grant"


def test_expired_code_is_invalid_grant(http, clock):
    user = make_user()
    rp = make_client()
    code, verifier = sign_in_with_pkce(http, rp, user)
    clock.advance(61)  # tokens.code_lifetime defaults to 60 s
    response = exchange_code(http, code, rp.client.client_id, rp.client_secret, verifier)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"


def test_code_is_redeemable_until_its_lifetime_ends(http, clock):
    user = make_user()
    rp = make_client()
    code, verifier = sign_in_with_pkce(http, rp, user)
    clock.advance(55)
    response = exchange_code(http, code, rp.client.client_id, rp.client_secret, verifier)
    assert response.status_code == 200, response.json


def test_code_issued_to_one_client_is_invalid_grant_for_another(http):
    user = make_user()
    rp_a = make_client()
    rp_b = make_client()
    code, verifier = sign_in_with_pkce(http, rp_a, user)
    response = exchange_code(http, code, rp_b.client.client_id, rp_b.client_secret, verifier)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "redirect_uri",
    [OTHER_REDIRECT_URI, REDIRECT_URI + "/", REDIRECT_URI + "?x=1", ""],
    ids=["other-registered-uri", "trailing-slash", "extra-query", "missing"],
)
def test_redirect_uri_differing_from_the_authorization_request_is_invalid_grant(
    http, redirect_uri
):
    user = make_user()
    rp = make_client(redirect_uris=[REDIRECT_URI, OTHER_REDIRECT_URI])
    code, verifier = sign_in_with_pkce(http, rp, user)
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    if redirect_uri:
        data["redirect_uri"] = redirect_uri
    response = token_request(http, data, rp.client.client_id, rp.client_secret)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"


def test_claiming_a_code_succeeds_once(http):
    user = make_user()
    rp = make_client()
    sign_in_with_pkce(http, rp, user)
    row = db.session.execute(
        db.select(AuthorizationCode).filter_by(client_id=rp.client.client_id)
    ).scalar_one()
    assert tokens.claim_authorization_code(row) is True
    assert tokens.claim_authorization_code(row) is False


def test_code_claimed_by_a_concurrent_redemption_is_refused(http, monkeypatch):
    """Two redemptions both pass the lookup; the conditional UPDATE lets only one win."""
    user = make_user()
    rp = make_client()
    code, verifier = sign_in_with_pkce(http, rp, user)
    real_claim = tokens.claim_authorization_code

    def claim_after_a_concurrent_winner(row: AuthorizationCode) -> bool:
        assert real_claim(row) is True  # the other request got there first
        return real_claim(row)

    monkeypatch.setattr(tokens, "claim_authorization_code", claim_after_a_concurrent_winner)
    response = exchange_code(http, code, rp.client.client_id, rp.client_secret, verifier)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"
    assert "access_token" not in response.json


# --- ID token (OIDC Core 2, 3.1.3.6, 3.1.3.7) ---


def test_id_token_is_signed_rs256_by_default_with_a_published_kid(http):
    user = make_user()
    rp = make_client()
    issued = obtain_tokens(http, rp.client.client_id, user.email, rp.client_secret)
    token = decode_id_token(http, issued["id_token"], "RS256")
    assert token.header["alg"] == "RS256"
    published = {key["kid"]: key for key in http.get("/jwks").json["keys"]}
    assert token.header["kid"] in published
    assert published[token.header["kid"]]["kty"] == "RSA"


def test_id_token_is_signed_es256_when_the_client_registered_es256(http):
    user = make_user()
    rp = make_client()
    rp.client.id_token_signed_response_alg = "ES256"
    db.session.commit()
    issued = obtain_tokens(http, rp.client.client_id, user.email, rp.client_secret)
    token = decode_id_token(http, issued["id_token"], "ES256")
    assert token.header["alg"] == "ES256"
    published = {key["kid"]: key for key in http.get("/jwks").json["keys"]}
    assert published[token.header["kid"]]["kty"] == "EC"
    with pytest.raises(JoseError):
        decode_id_token(http, issued["id_token"], "RS256")
    digest = hashlib.sha256(issued["access_token"].encode()).digest()
    assert token.claims["at_hash"] == b64url(digest[:16])


def test_id_token_carries_the_claims_of_the_sign_in(http):
    user = make_user()
    rp = make_client()
    before = int(time.time())
    issued = obtain_tokens(http, rp.client.client_id, user.email, rp.client_secret,
                           nonce="nonce-123")
    after = int(time.time())
    claims = decode_id_token(http, issued["id_token"], "RS256").claims
    assert claims["iss"] == ISSUER
    assert claims["aud"] == [rp.client.client_id]
    assert claims["sub"] == user.sub
    assert claims["nonce"] == "nonce-123"
    assert before <= claims["iat"] <= after
    assert claims["exp"] == claims["iat"] + 3600
    assert before - 1 <= claims["auth_time"] <= claims["iat"]
    assert claims["amr"] == ["pwd"]
    assert claims["acr"] == ACR_PASSWORD == "urn:portal-idp:acr:password"
    session = db.session.execute(db.select(IdpSession).filter_by(user_id=user.id)).scalar_one()
    assert claims["sid"] == session.id
    # OIDC Core 3.1.3.6: left half of SHA-256 of the access token, base64url.
    digest = hashlib.sha256(issued["access_token"].encode()).digest()
    assert claims["at_hash"] == b64url(digest[:16])


def test_id_token_auth_time_is_when_the_user_authenticated_not_when_the_code_was_issued(
    http, clock
):
    user = make_user()
    rp = make_client()
    first = obtain_tokens(http, rp.client.client_id, user.email, rp.client_secret)
    signed_in_at = decode_id_token(http, first["id_token"], "RS256").claims["auth_time"]
    clock.advance(600)
    # The same browser: the live session answers without asking for the password again.
    silent = obtain_tokens(http, rp.client.client_id, user.email, rp.client_secret)
    claims = decode_id_token(http, silent["id_token"], "RS256").claims
    assert claims["auth_time"] == signed_in_at
    assert claims["iat"] >= signed_in_at + 600
    assert claims["amr"] == ["pwd"]


def test_id_token_omits_nonce_when_none_was_sent(http):
    user = make_user()
    rp = make_client()
    issued = obtain_tokens(http, rp.client.client_id, user.email, rp.client_secret)
    assert "nonce" not in decode_id_token(http, issued["id_token"], "RS256").claims


def test_sub_is_stable_across_sign_ins_and_is_never_the_email(app):
    user = make_user(email="stable.person@example.org")
    rp = make_client()
    other_rp = make_client()
    subs = []
    for client in (rp, rp, other_rp):
        browser = app.test_client()  # a fresh browser: a full sign-in each time
        issued = obtain_tokens(browser, client.client.client_id, user.email,
                               client.client_secret)
        subs.append(decode_id_token(browser, issued["id_token"], "RS256").claims["sub"])
    assert subs == [user.sub] * 3
    assert user.email not in user.sub
    assert "@" not in user.sub


def test_id_token_reports_an_unverified_email_as_unverified(http):
    user = make_user(email_verified=False)
    rp = make_client()
    issued = obtain_tokens(http, rp.client.client_id, user.email, rp.client_secret,
                           scope="openid email")
    claims = decode_id_token(http, issued["id_token"], "RS256").claims
    assert claims["email"] == user.email
    assert claims["email_verified"] is False


def test_no_id_token_without_the_openid_scope(http):
    user = make_user()
    rp = make_client()
    issued = obtain_tokens(http, rp.client.client_id, user.email, rp.client_secret,
                           scope="profile")
    assert "id_token" not in issued


# --- Tokens we verify: explicit algorithm allowlist, never `none` (RFC 8725 3.1, 3.2) ---

FORGERIES = [
    "alg-none",
    "alg-None",
    "rs256-header-without-signature",
    "hs256-keyed-with-the-server-public-key",
    "genuine-signature-over-other-claims",
]


def forge_id_token(http, kind: str, claims: dict, genuine: str) -> str:
    """An ID token an attacker could make without our private key."""
    rsa_jwk = next(k for k in http.get("/jwks").json["keys"] if k["kty"] == "RSA")
    if kind == "alg-none":
        return unsigned_jwt(claims)
    if kind == "alg-None":
        return unsigned_jwt(claims, {"alg": "None", "typ": "JWT"})
    if kind == "rs256-header-without-signature":
        return unsigned_jwt(claims, {"alg": "RS256", "kid": rsa_jwk["kid"], "typ": "JWT"})
    if kind == "hs256-keyed-with-the-server-public-key":
        pem = RSAKey.import_key(rsa_jwk).as_pem(private=False)
        return hs256_jwt(claims, pem, {"alg": "HS256", "kid": rsa_jwk["kid"], "typ": "JWT"})
    header, _payload, signature = genuine.split(".")
    forged_payload = unsigned_jwt(claims).split(".")[1]
    return f"{header}.{forged_payload}.{signature}"


def signed_in_with_id_token(http):
    """A browser with a live session, and the genuine ID token the client received."""
    user = make_user()
    rp = make_client(post_logout_redirect_uris=["https://rp.example.org/signed-out"])
    issued = obtain_tokens(http, rp.client.client_id, user.email, rp.client_secret)
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": user.sub, "aud": [rp.client.client_id], "iat": now,
              "exp": now + 3600, "auth_time": now}
    return rp, issued["id_token"], claims


def still_signed_in(http, rp) -> bool:
    response = follow_to_client(http, authorize(http, rp.client.client_id, prompt="none"))
    return response.status_code == 302 and "code" in query_of(response.location)


def test_genuine_id_token_hint_is_accepted_at_authorize(http):
    rp, genuine, _claims = signed_in_with_id_token(http)
    response = authorize(http, rp.client.client_id, prompt="none", id_token_hint=genuine)
    assert response.status_code == 302
    assert "code" in query_of(response.location)


@pytest.mark.parametrize("kind", FORGERIES)
def test_forged_id_token_hint_is_refused_at_authorize(http, kind):
    rp, genuine, claims = signed_in_with_id_token(http)
    forged = forge_id_token(http, kind, claims, genuine)
    response = authorize(http, rp.client.client_id, prompt="none", id_token_hint=forged)
    # Refused either on an error page or, the redirect URI being valid, as an error response.
    if response.status_code == 302:
        params = query_of(response.location)
        assert params["error"] == "invalid_request"
        assert "code" not in params
    else:
        assert response.status_code == 400


def test_genuine_id_token_hint_logs_out_without_confirmation(http):
    rp, genuine, _claims = signed_in_with_id_token(http)
    response = http.get("/logout", query_string={
        "id_token_hint": genuine, "post_logout_redirect_uri": "https://rp.example.org/signed-out",
    })
    assert response.status_code == 302
    assert response.location.startswith("https://rp.example.org/signed-out")
    assert not still_signed_in(http, rp)


@pytest.mark.parametrize("kind", FORGERIES)
def test_forged_id_token_hint_is_refused_at_logout(http, kind):
    rp, genuine, claims = signed_in_with_id_token(http)
    forged = forge_id_token(http, kind, claims, genuine)
    response = http.get("/logout", query_string={
        "id_token_hint": forged, "post_logout_redirect_uri": "https://rp.example.org/signed-out",
    })
    assert response.status_code == 400
    assert not (response.location or "").startswith("https://rp.example.org")
    assert still_signed_in(http, rp)


# --- client_credentials (RFC 6749 4.4) ---


def make_service_client(**kwargs):
    kwargs.setdefault("grant_types", ["client_credentials"])
    kwargs.setdefault("redirect_uris", [])
    kwargs.setdefault("scopes", ["reports:read", "reports:write"])
    return make_client(**kwargs)


def test_client_credentials_issues_an_access_token_without_refresh_token(http):
    service = make_service_client()
    response = token_request(http, {"grant_type": "client_credentials", "scope": "reports:read"},
                             service.client.client_id, service.client_secret)
    assert response.status_code == 200, response.json
    body = response.json
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "reports:read"
    assert "refresh_token" not in body
    assert "id_token" not in body
    info = introspect(http, service, body["access_token"]).json
    assert info["active"] is True
    assert info["client_id"] == service.client.client_id
    assert "sub" not in info


def test_client_credentials_works_with_private_key_jwt(http):
    service = make_service_client(jwks=RP_JWKS)
    data = {"grant_type": "client_credentials",
            **assertion_form(client_assertion(RP_KEY, service.client.client_id))}
    response = http.post("/token", data=data)
    assert response.status_code == 200, response.json
    assert "refresh_token" not in response.json


def test_client_credentials_grants_only_scopes_registered_for_the_client(http):
    # RFC 6749 3.3: the server may narrow the requested scope, never widen the registration.
    service = make_service_client(scopes=["reports:read"])
    response = token_request(
        http, {"grant_type": "client_credentials", "scope": "reports:read admin"},
        service.client.client_id, service.client_secret,
    )
    if response.status_code == 200:
        assert response.json.get("scope", "").split() == ["reports:read"]
    else:
        assert response.json["error"] == "invalid_scope"


def test_client_credentials_is_refused_for_a_client_without_that_grant(http):
    rp = make_client()
    response = token_request(http, {"grant_type": "client_credentials"},
                             rp.client.client_id, rp.client_secret)
    assert response.status_code == 400
    assert response.json["error"] == "unauthorized_client"


def test_client_credentials_needs_client_authentication(http):
    service = make_service_client()
    response = http.post("/token", data={"grant_type": "client_credentials",
                                         "client_id": service.client.client_id})
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"


def test_public_clients_cannot_register_client_credentials(app):
    with pytest.raises(ClientRegistrationError, match="client_credentials"):
        make_client(public=True, grant_types=["authorization_code", "client_credentials"])


def test_unsupported_grant_type_is_refused(http):
    rp = make_client()
    response = token_request(http, {"grant_type": "password", "username": "x", "password": "y"},
                             rp.client.client_id, rp.client_secret)
    assert response.status_code == 400
    assert response.json["error"] == "unsupported_grant_type"


def test_token_endpoint_accepts_only_post(http):
    rp = make_client()
    response = http.get("/token", headers=basic_auth(rp.client.client_id, rp.client_secret))
    assert response.status_code == 405
