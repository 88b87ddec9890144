"""Throttling at every credential check, as an attacker meets it over HTTP."""

from __future__ import annotations

import base64

import pytest

from idp.security import throttle
from tests.driver import follow_to_client, open_login_page, query_of, submit_form
from tests.factories import PASSWORD, make_client, make_user

TOO_MANY = "Too many attempts"


def try_password(http, client_id: str, email: str, password: str):
    page = open_login_page(http, client_id, prompt="login")  # even when signed in already
    return submit_form(http, page, email=email, password=password)


@pytest.mark.parametrize("known", [True, False])
def test_password_guessing_is_slowed_down_for_known_and_unknown_emails(http, known):
    rp = make_client()
    email = make_user().email if known else "nobody@example.org"
    for _ in range(throttle.ACCOUNT.free):
        assert TOO_MANY not in try_password(http, rp.client.client_id, email, "wrong guess!").text
    assert TOO_MANY in try_password(http, rp.client.client_id, email, "wrong guess!").text


def test_while_throttled_even_the_right_password_waits_then_works(http, clock):
    user = make_user()
    rp = make_client()
    for _ in range(throttle.ACCOUNT.free + 1):
        try_password(http, rp.client.client_id, user.email, "wrong guess!")
    assert TOO_MANY in try_password(http, rp.client.client_id, user.email, PASSWORD).text
    clock.advance(5)
    done = follow_to_client(http, try_password(http, rp.client.client_id, user.email, PASSWORD))
    assert "code" in query_of(done.location)


def test_a_success_resets_the_account_count(http):
    user = make_user()
    rp = make_client()
    for _ in range(throttle.ACCOUNT.free - 1):
        try_password(http, rp.client.client_id, user.email, "wrong guess!")
    follow_to_client(http, try_password(http, rp.client.client_id, user.email, PASSWORD))
    for _ in range(throttle.ACCOUNT.free - 1):
        assert TOO_MANY not in try_password(
            http, rp.client.client_id, user.email, "wrong guess!").text


def test_an_attacker_cannot_lock_the_owner_out_for_good(http, clock):
    """100 consecutive failures pause password sign-in; a reset by email lifts it."""
    from idp.account.completion import set_new_password

    user = make_user()
    rp = make_client()
    key = throttle.account_key("password", user.email)
    for _ in range(throttle.MAX_CONSECUTIVE_FAILURES):
        throttle.record_failure(key)
    clock.advance(3600)
    page = try_password(http, rp.client.client_id, user.email, PASSWORD).text
    assert "Password not working?" in page and "paused" in page
    from flask import current_app

    set_new_password(user, current_app.extensions["idp"].passwords.hash("a fresh passphrase 42"))
    done = follow_to_client(
        http, try_password(http, rp.client.client_id, user.email, "a fresh passphrase 42"))
    assert "code" in query_of(done.location)


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def test_client_secret_guessing_gets_429_with_retry_after(http):
    service = make_client(grant_types=["client_credentials"], redirect_uris=[])
    for _ in range(throttle.CLIENT.free):
        response = http.post("/token", data={"grant_type": "client_credentials"},
                             headers=basic(service.client.client_id, "guess"))
        assert response.status_code == 401
    blocked = http.post("/token", data={"grant_type": "client_credentials"},
                        headers=basic(service.client.client_id, service.client_secret))
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    assert blocked.json["error"] == "invalid_client"


def test_link_guessing_is_slowed_down_per_address(http):
    for _ in range(throttle.ADDRESS.free):
        assert http.get("/password/not-a-real-token").status_code == 404
    assert http.get("/password/not-a-real-token").status_code == 429
