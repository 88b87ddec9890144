"""The UserInfo endpoint (OIDC Core 5.3) and its bearer-token protection (RFC 6750)."""

from __future__ import annotations

import pytest

from idp.clock import utcnow
from idp.db import db
from tests.driver import bearer, endpoint_request, obtain_tokens, token_request
from tests.factories import make_client, make_user


def sign_in_for(http, scope: str, **user_fields):
    user = make_user(**user_fields)
    rp = make_client()
    issued = obtain_tokens(http, rp.client.client_id, user.email, rp.client_secret, scope=scope)
    return user, rp, issued


def assert_bearer_challenge(response, error: str | None = None) -> None:
    assert response.status_code == 401
    challenge = response.headers.get("WWW-Authenticate", "")
    assert challenge.lower().startswith("bearer"), challenge
    if error:
        assert f'error="{error}"' in challenge, challenge


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_userinfo_answers_with_a_bearer_header(http, method):
    user, _rp, issued = sign_in_for(http, "openid email")
    response = http.open("/userinfo", method=method, headers=bearer(issued["access_token"]))
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.json["sub"] == user.sub
    assert response.json["email"] == user.email


def test_userinfo_without_a_token_is_401_with_a_bearer_challenge(http):
    assert_bearer_challenge(http.get("/userinfo"))


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-a-real-token", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a b"],
    ids=["unknown-token", "empty-token", "basic-scheme", "two-tokens"],
)
def test_userinfo_with_an_invalid_token_is_401(http, authorization):
    response = http.get("/userinfo", headers={"Authorization": authorization})
    assert_bearer_challenge(response)


def test_userinfo_with_an_unknown_token_says_invalid_token(http):
    response = http.get("/userinfo", headers=bearer("not-a-real-token"))
    assert_bearer_challenge(response, "invalid_token")


def test_userinfo_with_an_expired_token_is_401(http, clock):
    _user, _rp, issued = sign_in_for(http, "openid")
    clock.advance(3601)  # tokens.access_token_lifetime defaults to 3600 s
    response = http.get("/userinfo", headers=bearer(issued["access_token"]))
    assert_bearer_challenge(response, "invalid_token")


def test_userinfo_with_a_revoked_token_is_401(http):
    _user, rp, issued = sign_in_for(http, "openid")
    endpoint_request(http, "/revoke", {"token": issued["access_token"]}, rp.client.client_id,
                     rp.client_secret)
    response = http.get("/userinfo", headers=bearer(issued["access_token"]))
    assert_bearer_challenge(response, "invalid_token")


def test_userinfo_does_not_accept_a_refresh_token(http):
    _user, _rp, issued = sign_in_for(http, "openid")
    assert_bearer_challenge(http.get("/userinfo", headers=bearer(issued["refresh_token"])))


def test_userinfo_does_not_accept_a_token_in_the_query_string(http):
    # RFC 9700 2.5: access tokens in URIs leak; only the Authorization header is read.
    _user, _rp, issued = sign_in_for(http, "openid")
    response = http.get("/userinfo", query_string={"access_token": issued["access_token"]})
    assert response.status_code == 401


def test_userinfo_needs_the_openid_scope(http):
    _user, _rp, issued = sign_in_for(http, "profile email")
    response = http.get("/userinfo", headers=bearer(issued["access_token"]))
    assert response.status_code == 403
    assert response.json["error"] == "insufficient_scope"


def test_userinfo_refuses_a_token_that_has_no_user(http):
    # A client_credentials token speaks for a client, not a person: no claims to release.
    service = make_client(grant_types=["client_credentials"], redirect_uris=[],
                          scopes=["openid", "reports:read"])
    token = token_request(http, {"grant_type": "client_credentials", "scope": "openid"},
                          service.client.client_id, service.client_secret).json["access_token"]
    response = http.get("/userinfo", headers=bearer(token))
    assert_bearer_challenge(response, "invalid_token")
    assert response.mimetype == "application/json"
    assert "sub" not in response.json


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("openid", {"sub"}),
        ("openid email", {"sub", "email", "email_verified"}),
        ("openid profile", {"sub", "name"}),
        ("openid phone", {"sub", "phone_number", "phone_number_verified"}),
        ("openid profile email phone",
         {"sub", "name", "email", "email_verified", "phone_number", "phone_number_verified"}),
    ],
)
def test_userinfo_releases_claims_by_scope(http, scope, expected):
    user = make_user(name="Pat Example")
    user.phone = "+15555550123"
    db.session.commit()
    rp = make_client()
    issued = obtain_tokens(http, rp.client.client_id, user.email, rp.client_secret, scope=scope)
    info = http.get("/userinfo", headers=bearer(issued["access_token"])).json
    assert set(info) == expected
    assert info["sub"] == user.sub
    if "email" in expected:
        assert info["email"] == user.email and info["email_verified"] is True
    if "name" in expected:
        assert info["name"] == "Pat Example"
    if "phone_number" in expected:
        assert info["phone_number"] == "+15555550123"
        assert info["phone_number_verified"] is False


def test_userinfo_omits_phone_number_when_the_user_has_none(http):
    _user, _rp, issued = sign_in_for(http, "openid phone")
    info = http.get("/userinfo", headers=bearer(issued["access_token"])).json
    assert "phone_number" not in info
    assert "phone_number_verified" not in info


def test_userinfo_reports_an_unverified_email_as_unverified(http):
    _user, _rp, issued = sign_in_for(http, "openid email", email_verified=False)
    info = http.get("/userinfo", headers=bearer(issued["access_token"])).json
    assert info["email_verified"] is False


def test_userinfo_sub_matches_the_id_token_and_is_not_the_email(http):
    user, _rp, issued = sign_in_for(http, "openid email")
    info = http.get("/userinfo", headers=bearer(issued["access_token"])).json
    assert info["sub"] == user.sub != user.email


def test_userinfo_refuses_the_token_of_a_disabled_user(http):
    user, _rp, issued = sign_in_for(http, "openid email")
    user.disabled_at = utcnow()
    db.session.commit()
    response = http.get("/userinfo", headers=bearer(issued["access_token"]))
    assert_bearer_challenge(response, "invalid_token")
    assert "email" not in response.json
