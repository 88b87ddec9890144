"""The refresh_token grant: rotation, reuse detection, binding, scope and lifetime (RFC 6749 6,
RFC 9700 4.14.2)."""

from __future__ import annotations

import pytest

from idp.clock import utcnow
from idp.db import db
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


def refresh(http, rp, refresh_token: str, **data: str):
    return refresh_tokens(http, refresh_token, rp.client.client_id, rp.client_secret, **data)


def works(http, access_token: str) -> bool:
    return http.get("/userinfo", headers=bearer(access_token)).status_code == 200


def assert_invalid_grant(response) -> None:
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"
    assert "access_token" not in response.json


def test_refresh_rotates_the_refresh_token_every_time(http, signed_in):
    user, rp, issued = signed_in
    seen = {issued["refresh_token"]}
    current = issued
    for _ in range(3):
        response = refresh(http, rp, current["refresh_token"])
        assert response.status_code == 200, response.json
        current = response.json
        assert current["refresh_token"] not in seen
        assert current["scope"] == SCOPE
        assert current["token_type"] == "Bearer"
        seen.add(current["refresh_token"])
        info = http.get("/userinfo", headers=bearer(current["access_token"]))
        assert info.json["sub"] == user.sub
    assert "no-store" in response.headers["Cache-Control"]


def test_rotated_refresh_token_is_refused(http, signed_in):
    _user, rp, issued = signed_in
    assert refresh(http, rp, issued["refresh_token"]).status_code == 200
    assert_invalid_grant(refresh(http, rp, issued["refresh_token"]))


def test_reuse_of_a_rotated_refresh_token_revokes_the_whole_family(http, signed_in):
    _user, rp, first = signed_in
    second = refresh(http, rp, first["refresh_token"]).json
    newest = refresh(http, rp, second["refresh_token"]).json
    assert works(http, newest["access_token"])

    assert_invalid_grant(refresh(http, rp, first["refresh_token"]))

    assert not works(http, newest["access_token"])
    assert not works(http, second["access_token"])
    assert not works(http, first["access_token"])
    assert_invalid_grant(refresh(http, rp, newest["refresh_token"]))
    introspected = endpoint_request(http, "/introspect", {"token": newest["refresh_token"]},
                                    rp.client.client_id, rp.client_secret)
    assert introspected.json == {"active": False}


def test_reuse_revokes_only_its_own_family(http, signed_in):
    user, rp, first = signed_in
    other = obtain_tokens(http, rp.client.client_id, user.email, rp.client_secret, scope=SCOPE)
    refresh(http, rp, first["refresh_token"])
    refresh(http, rp, first["refresh_token"])  # reuse
    assert works(http, other["access_token"])
    assert refresh(http, rp, other["refresh_token"]).status_code == 200


def test_refresh_token_is_bound_to_its_client(http, signed_in):
    _user, _rp, issued = signed_in
    thief = make_client()
    response = refresh(http, thief, issued["refresh_token"])
    assert_invalid_grant(response)


def test_refresh_token_of_a_public_client_is_bound_to_it(http):
    user = make_user()
    app_client = make_client(public=True)
    other_public = make_client(public=True)
    issued = obtain_tokens(http, app_client.client.client_id, user.email)
    response = refresh_tokens(http, issued["refresh_token"], other_public.client.client_id)
    assert_invalid_grant(response)


def test_refresh_needs_client_authentication_for_a_confidential_client(http, signed_in):
    _user, rp, issued = signed_in
    response = refresh_tokens(http, issued["refresh_token"], rp.client.client_id)  # no secret
    assert response.json["error"] == "invalid_client"
    assert refresh(http, rp, issued["refresh_token"]).status_code == 200


def test_refresh_may_narrow_the_scope(http, signed_in):
    user, rp, issued = signed_in
    response = refresh(http, rp, issued["refresh_token"], scope="openid")
    assert response.status_code == 200, response.json
    assert response.json["scope"] == "openid"
    info = http.get("/userinfo", headers=bearer(response.json["access_token"])).json
    assert info == {"sub": user.sub}


def test_narrowing_does_not_shrink_what_the_refresh_token_may_ask_for(http, signed_in):
    # RFC 6749 6: a new refresh token has the scope of the one it replaces; the narrowing
    # applies to the access token only.
    _user, rp, issued = signed_in
    narrowed = refresh(http, rp, issued["refresh_token"], scope="openid").json
    partly = refresh(http, rp, narrowed["refresh_token"], scope="openid email")
    assert partly.status_code == 200, partly.json
    assert partly.json["scope"] == "openid email"
    response = refresh(http, rp, partly.json["refresh_token"])
    assert response.status_code == 200, response.json
    assert response.json["scope"] == SCOPE


@pytest.mark.parametrize("scope", ["openid profile email phone", "offline_access", "admin"])
def test_refresh_may_not_widen_the_scope(http, signed_in, scope):
    _user, rp, issued = signed_in
    response = refresh(http, rp, issued["refresh_token"], scope=scope)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_scope"
    # A refused widening does not spend the refresh token.
    assert refresh(http, rp, issued["refresh_token"]).status_code == 200


def test_refresh_family_expires_after_the_refresh_token_lifetime(app, http, signed_in, clock):
    _user, rp, issued = signed_in
    lifetime = app.extensions["idp"].settings.tokens.refresh_token_lifetime
    clock.advance(lifetime + 1)
    assert_invalid_grant(refresh(http, rp, issued["refresh_token"]))


def test_rotation_does_not_extend_the_family_lifetime(app, http, clock):
    rp = make_client()
    issued = obtain_tokens(http, rp.client.client_id, make_user().email, rp.client_secret,
                           scope=SCOPE + " offline_access")  # outlives the browser session
    lifetime = app.extensions["idp"].settings.tokens.refresh_token_lifetime
    clock.advance(lifetime - 100)
    rotated = refresh(http, rp, issued["refresh_token"])
    assert rotated.status_code == 200, rotated.json
    clock.advance(200)
    assert_invalid_grant(refresh(http, rp, rotated.json["refresh_token"]))


def test_public_client_refreshes_with_its_client_id_only(http):
    user = make_user()
    app_client = make_client(public=True)
    issued = obtain_tokens(http, app_client.client.client_id, user.email)
    response = refresh_tokens(http, issued["refresh_token"], app_client.client.client_id)
    assert response.status_code == 200, response.json
    assert response.json["refresh_token"] != issued["refresh_token"]
    again = refresh_tokens(http, issued["refresh_token"], app_client.client.client_id)
    assert_invalid_grant(again)


def test_public_client_refresh_without_client_id_is_refused(http):
    user = make_user()
    app_client = make_client(public=True)
    issued = obtain_tokens(http, app_client.client.client_id, user.email)
    response = http.post("/token", data={"grant_type": "refresh_token",
                                         "refresh_token": issued["refresh_token"]})
    assert response.status_code in (400, 401)
    assert response.json["error"] == "invalid_client"


def test_access_token_is_not_a_refresh_token(http, signed_in):
    _user, rp, issued = signed_in
    assert_invalid_grant(refresh(http, rp, issued["access_token"]))


def test_unknown_refresh_token_is_invalid_grant(http, signed_in):
    _user, rp, _issued = signed_in
    assert_invalid_grant(refresh(http, rp, "no-such-refresh-token"))


def test_refresh_is_refused_for_a_disabled_user(http, signed_in):
    user, rp, issued = signed_in
    user.disabled_at = utcnow()
    db.session.commit()
    response = refresh(http, rp, issued["refresh_token"])
    assert response.status_code == 400
    assert "access_token" not in response.json


def test_client_without_the_refresh_grant_gets_no_refresh_token(http):
    user = make_user()
    rp = make_client(grant_types=["authorization_code"])
    issued = obtain_tokens(http, rp.client.client_id, user.email, rp.client_secret)
    assert "refresh_token" not in issued
    assert "access_token" in issued


def test_refresh_token_without_offline_access_ends_with_its_session(http, signed_in, clock):
    _user, rp, issued = signed_in
    clock.advance(31 * 60)  # past the default 30-minute idle timeout: the session is over
    assert_invalid_grant(refresh(http, rp, issued["refresh_token"]))


def test_offline_access_refresh_token_outlives_the_session(http, clock):
    rp = make_client()
    issued = obtain_tokens(http, rp.client.client_id, make_user().email, rp.client_secret,
                           scope=SCOPE + " offline_access")
    clock.advance(13 * 3600)  # past the session maximum
    assert refresh(http, rp, issued["refresh_token"]).status_code == 200
