"""Token revocation (RFC 7009) and introspection (RFC 7662)."""

from __future__ import annotations

import time

import pytest

from tests.conftest import ISSUER
from tests.driver import bearer, endpoint_request, obtain_tokens, refresh_tokens
from tests.factories import make_client, make_user

SCOPE = "openid profile email"


@pytest.fixture
def signed_in(http):
    """A confidential client holding the tokens of a fresh sign-in."""
    user = make_user()
    rp = make_client()
    issued = obtain_tokens(http, rp.client.client_id, user.email, rp.client_secret, scope=SCOPE)
    return user, rp, issued


def revoke(http, rp, token: str, hint: str | None = None):
    data = {"token": token}
    if hint:
        data["token_type_hint"] = hint
    return endpoint_request(http, "/revoke", data, rp.client.client_id, rp.client_secret)


def introspect(http, rp, token: str, hint: str | None = None):
    data = {"token": token}
    if hint:
        data["token_type_hint"] = hint
    return endpoint_request(http, "/introspect", data, rp.client.client_id, rp.client_secret)


def access_works(http, access_token: str) -> bool:
    return http.get("/userinfo", headers=bearer(access_token)).status_code == 200


def refresh_works(http, rp, refresh_token: str) -> bool:
    response = refresh_tokens(http, refresh_token, rp.client.client_id, rp.client_secret)
    return response.status_code == 200


def make_resource_server(**kwargs):
    """A service client, as an API that introspects the tokens presented to it."""
    kwargs.setdefault("grant_types", ["client_credentials"])
    kwargs.setdefault("redirect_uris", [])
    return make_client(**kwargs)


# --- Revocation (RFC 7009) ---


@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token"])
def test_revoking_either_token_makes_both_unusable(http, signed_in, kind, hint):
    # RFC 7009 2.1: a wrong hint must not stop the search; revoking a refresh token also
    # revokes the access tokens of the same grant (and we revoke the grant either way).
    _user, rp, issued = signed_in
    response = revoke(http, rp, issued[kind], hint)
    assert response.status_code == 200
    assert not access_works(http, issued["access_token"])
    assert not refresh_works(http, rp, issued["refresh_token"])


def test_revoking_a_refresh_token_revokes_the_tokens_rotated_from_it(http, signed_in):
    _user, rp, first = signed_in
    second = refresh_tokens(http, first["refresh_token"], rp.client.client_id,
                            rp.client_secret).json
    assert revoke(http, rp, second["refresh_token"]).status_code == 200
    assert not access_works(http, second["access_token"])
    assert not access_works(http, first["access_token"])


def test_revoking_one_grant_leaves_the_others_alone(http, signed_in):
    user, rp, first = signed_in
    other = obtain_tokens(http, rp.client.client_id, user.email, rp.client_secret, scope=SCOPE)
    revoke(http, rp, first["access_token"])
    assert access_works(http, other["access_token"])
    assert refresh_works(http, rp, other["refresh_token"])


@pytest.mark.parametrize("token", ["no-such-token", "", "x" * 500])
def test_revoking_an_unknown_token_is_200(http, signed_in, token):
    _user, rp, _issued = signed_in
    response = revoke(http, rp, token)
    assert response.status_code == 200


def test_revoking_twice_is_200(http, signed_in):
    _user, rp, issued = signed_in
    assert revoke(http, rp, issued["access_token"]).status_code == 200
    assert revoke(http, rp, issued["access_token"]).status_code == 200


def test_another_clients_token_is_not_revoked(http, signed_in):
    _user, _rp, issued = signed_in
    intruder = make_client()
    response = revoke(http, intruder, issued["access_token"])
    assert response.status_code in (200, 400)
    assert access_works(http, issued["access_token"])
    response = revoke(http, intruder, issued["refresh_token"])
    assert response.status_code in (200, 400)
    assert access_works(http, issued["access_token"])


def test_revocation_requires_client_authentication(http, signed_in):
    _user, rp, issued = signed_in
    cases = [
        http.post("/revoke", data={"token": issued["access_token"]}),
        http.post("/revoke", data={"token": issued["access_token"],
                                   "client_id": rp.client.client_id}),
        endpoint_request(http, "/revoke", {"token": issued["access_token"]},
                         rp.client.client_id, "not-the-secret"),
    ]
    for response in cases:
        assert response.status_code in (400, 401)
        assert response.json["error"] == "invalid_client"
    assert access_works(http, issued["access_token"])


def test_public_client_revokes_its_token_with_its_client_id(http):
    user = make_user()
    app_client = make_client(public=True)
    issued = obtain_tokens(http, app_client.client.client_id, user.email)
    response = endpoint_request(http, "/revoke", {"token": issued["refresh_token"]},
                                app_client.client.client_id)
    assert response.status_code == 200
    assert not access_works(http, issued["access_token"])


def test_revocation_without_a_token_is_invalid_request(http, signed_in):
    _user, rp, _issued = signed_in
    response = endpoint_request(http, "/revoke", {}, rp.client.client_id, rp.client_secret)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


# --- Introspection (RFC 7662) ---


def test_introspection_describes_an_active_access_token(http, signed_in):
    user, rp, issued = signed_in
    before = int(time.time())
    info = introspect(http, rp, issued["access_token"]).json
    assert info["active"] is True
    assert info["sub"] == user.sub
    assert info["client_id"] == rp.client.client_id
    assert info["scope"] == SCOPE
    assert info["iss"] == ISSUER
    assert info["token_type"] == "Bearer"
    assert before - 5 <= info["iat"] <= before + 1
    assert info["exp"] == info["iat"] + 3600


def test_introspection_describes_an_active_refresh_token(app, http, signed_in):
    user, rp, issued = signed_in
    info = introspect(http, rp, issued["refresh_token"], "refresh_token").json
    assert info["active"] is True
    assert info["sub"] == user.sub
    assert info["client_id"] == rp.client.client_id
    lifetime = app.extensions["idp"].settings.tokens.refresh_token_lifetime
    assert info["exp"] == info["iat"] + lifetime


def test_introspection_finds_a_token_despite_a_wrong_hint(http, signed_in):
    _user, rp, issued = signed_in
    assert introspect(http, rp, issued["access_token"], "refresh_token").json["active"] is True
    assert introspect(http, rp, issued["refresh_token"], "access_token").json["active"] is True


def test_introspection_response_is_not_cacheable(http, signed_in):
    _user, rp, issued = signed_in
    response = introspect(http, rp, issued["access_token"])
    assert "no-store" in response.headers["Cache-Control"]


@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
def test_revoked_token_is_inactive(http, signed_in, kind):
    _user, rp, issued = signed_in
    revoke(http, rp, issued["access_token"])
    assert introspect(http, rp, issued[kind]).json == {"active": False}


def test_expired_access_token_is_inactive(http, signed_in, clock):
    _user, rp, issued = signed_in
    clock.advance(3601)
    assert introspect(http, rp, issued["access_token"]).json == {"active": False}
    # The refresh token outlives its access token.
    assert introspect(http, rp, issued["refresh_token"]).json["active"] is True


def test_expired_refresh_token_is_inactive(app, http, signed_in, clock):
    _user, rp, issued = signed_in
    clock.advance(app.extensions["idp"].settings.tokens.refresh_token_lifetime + 1)
    assert introspect(http, rp, issued["refresh_token"]).json == {"active": False}


def test_rotated_refresh_token_is_inactive(http, signed_in):
    _user, rp, issued = signed_in
    rotated = refresh_tokens(http, issued["refresh_token"], rp.client.client_id,
                             rp.client_secret).json
    assert introspect(http, rp, issued["refresh_token"]).json == {"active": False}
    assert introspect(http, rp, rotated["refresh_token"]).json["active"] is True


def test_unknown_token_is_inactive(http, signed_in):
    _user, rp, _issued = signed_in
    assert introspect(http, rp, "no-such-token").json == {"active": False}


@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
def test_client_cannot_introspect_another_clients_token(http, signed_in, kind):
    _user, _rp, issued = signed_in
    other = make_client()
    assert introspect(http, other, issued[kind]).json == {"active": False}


@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
def test_resource_server_with_the_introspect_scope_introspects_any_token(http, signed_in, kind):
    user, rp, issued = signed_in
    api = make_resource_server(scopes=["reports:read", "introspect"])
    info = introspect(http, api, issued[kind]).json
    assert info["active"] is True
    assert info["sub"] == user.sub
    assert info["client_id"] == rp.client.client_id


def test_resource_server_without_the_introspect_scope_sees_inactive(http, signed_in):
    _user, _rp, issued = signed_in
    api = make_resource_server(scopes=["reports:read"])
    assert introspect(http, api, issued["access_token"]).json == {"active": False}


def test_introspection_requires_client_authentication(http, signed_in):
    _user, rp, issued = signed_in
    cases = [
        http.post("/introspect", data={"token": issued["access_token"]}),
        http.post("/introspect", data={"token": issued["access_token"],
                                       "client_id": rp.client.client_id}),
        endpoint_request(http, "/introspect", {"token": issued["access_token"]},
                         rp.client.client_id, "not-the-secret"),
    ]
    for response in cases:
        assert response.status_code in (400, 401)
        assert response.json["error"] == "invalid_client"
        assert "active" not in response.json


def test_public_client_cannot_introspect(http):
    user = make_user()
    app_client = make_client(public=True)
    issued = obtain_tokens(http, app_client.client.client_id, user.email)
    response = endpoint_request(http, "/introspect", {"token": issued["access_token"]},
                                app_client.client.client_id)
    assert response.status_code in (400, 401)
    assert response.json["error"] == "invalid_client"


def test_introspection_without_a_token_is_invalid_request(http, signed_in):
    _user, rp, _issued = signed_in
    response = endpoint_request(http, "/introspect", {}, rp.client.client_id, rp.client_secret)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"
