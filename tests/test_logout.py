"""RP-Initiated Logout 1.0: who may be redirected where, and what ends."""

from __future__ import annotations

import base64
import json

import pytest

from tests.driver import authorize, exchange_code, follow_to_client, query_of, sign_in
from tests.factories import make_client, make_user
from tests.html_forms import parse_forms

POST_LOGOUT = "https://rp.example.org/signed-out"


@pytest.fixture
def signed_in(http):
    """A browser signed in at a client, with the tokens it received."""
    user = make_user()
    rp = make_client(post_logout_redirect_uris=[POST_LOGOUT])
    code = sign_in(http, rp.client.client_id, user.email).code
    tokens = exchange_code(http, code, rp.client.client_id, rp.client_secret).json
    return {"user": user, "rp": rp, "tokens": tokens}


def is_signed_in(http, client_id: str) -> bool:
    response = follow_to_client(http, authorize(http, client_id, prompt="none"))
    return "code" in query_of(response.location)


def test_logout_with_id_token_hint_redirects_to_registered_uri_with_state(http, signed_in):
    response = http.get("/logout", query_string={
        "id_token_hint": signed_in["tokens"]["id_token"],
        "post_logout_redirect_uri": POST_LOGOUT,
        "state": "s-42",
    })
    assert response.status_code == 302
    assert response.location == f"{POST_LOGOUT}?state=s-42"
    assert not is_signed_in(http, signed_in["rp"].client.client_id)


@pytest.mark.parametrize("uri", [
    "https://evil.example/signed-out",
    POST_LOGOUT + "/extra",
    POST_LOGOUT + "?next=https://evil.example",
    "https://rp.example.org/callback",  # a redirect_uri, not a post-logout URI
])
def test_unregistered_post_logout_redirect_uri_is_never_followed(http, signed_in, uri):
    response = http.get("/logout", query_string={
        "id_token_hint": signed_in["tokens"]["id_token"], "post_logout_redirect_uri": uri,
    })
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert "You are signed out" in response.get_data(as_text=True)


def test_logout_without_hint_asks_for_confirmation_and_needs_csrf(http, signed_in):
    client_id = signed_in["rp"].client.client_id
    page = http.get("/logout", query_string={"client_id": client_id})
    assert page.status_code == 200 and "Sign out?" in page.get_data(as_text=True)
    assert is_signed_in(http, client_id)

    form = parse_forms(page.get_data(as_text=True))[0]
    forged = http.post(form.action, data={**form.fields, "csrf_token": "forged"})
    assert forged.status_code == 400
    assert is_signed_in(http, client_id)

    confirmed = http.post(form.action, data=form.fields)
    assert confirmed.status_code == 200
    assert not is_signed_in(http, client_id)


def test_logout_without_hint_does_not_redirect_even_to_a_registered_uri(http, signed_in):
    page = http.get("/logout", query_string={
        "client_id": signed_in["rp"].client.client_id, "post_logout_redirect_uri": POST_LOGOUT,
    })
    form = parse_forms(page.get_data(as_text=True))[0]
    response = http.post(form.action, data=form.fields)
    assert response.status_code == 200 and "Location" not in response.headers


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("hint", ["garbage", "a.b.c"])
def test_invalid_id_token_hint_shows_error_and_keeps_session(http, signed_in, hint):
    response = http.get("/logout", query_string={
        "id_token_hint": hint, "post_logout_redirect_uri": POST_LOGOUT,
    })
    assert response.status_code == 400 and "Location" not in response.headers
    assert is_signed_in(http, signed_in["rp"].client.client_id)


def test_unsigned_id_token_hint_is_refused(http, signed_in):
    real = signed_in["tokens"]["id_token"].split(".")[1]
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{real}."
    response = http.get("/logout", query_string={
        "id_token_hint": unsigned, "post_logout_redirect_uri": POST_LOGOUT,
    })
    assert response.status_code == 400 and "Location" not in response.headers
    assert is_signed_in(http, signed_in["rp"].client.client_id)


def test_client_id_must_match_the_hint_audience(http, signed_in):
    other = make_client(post_logout_redirect_uris=[POST_LOGOUT])
    response = http.get("/logout", query_string={
        "id_token_hint": signed_in["tokens"]["id_token"],
        "client_id": other.client.client_id,
        "post_logout_redirect_uri": POST_LOGOUT,
    })
    assert response.status_code == 400 and "Location" not in response.headers


def test_logout_ends_session_tokens_but_not_offline_access(http):
    user = make_user()
    rp = make_client(post_logout_redirect_uris=[POST_LOGOUT])
    online = exchange_code(http, sign_in(http, rp.client.client_id, user.email).code,
                           rp.client.client_id, rp.client_secret).json
    offline = exchange_code(
        http,
        sign_in(http, rp.client.client_id, user.email, scope="openid offline_access").code,
        rp.client.client_id, rp.client_secret,
    ).json
    http.get("/logout", query_string={"id_token_hint": online["id_token"]})

    def works(token: str) -> bool:
        response = http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
        return response.status_code == 200

    assert not works(online["access_token"])
    assert works(offline["access_token"])
