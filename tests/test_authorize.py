"""The authorization endpoint: what it refuses, how it answers, and the hosted sign-in page.

Prompt, max_age and hints are in test_prompt.py; consent in test_consent.py.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from idp.clock import utcnow
from idp.db import db
from idp.login.steps.password import WRONG_CREDENTIALS
from tests.conftest import ISSUER
from tests.driver import (
    authorization_response_params,
    authorize,
    authorize_post,
    exchange_code,
    follow_to_client,
    open_login_page,
    pkce_pair,
    query_of,
    shows_step,
    sign_in,
    submit_form,
)
from tests.factories import PASSWORD, REDIRECT_URI, make_client, make_user
from tests.html_forms import parse_buttons, parse_forms, parse_labels, parse_links

EXPIRED = "This sign-in has expired"


def assert_error_page(response) -> None:
    """A page for the person, never a redirect or a form that posts anywhere."""
    assert response.status_code == 400, (response.status_code, response.location)
    assert "Location" not in response.headers
    assert response.mimetype == "text/html"
    assert "<form" not in response.get_data(as_text=True)


def error_redirect(response, state: str | None = None) -> str:
    """The `error` the client receives; state and iss must come with it."""
    params = authorization_response_params(response)
    assert "code" not in params
    assert params.get("iss") == ISSUER
    if state is not None:
        assert params.get("state") == state
    return params["error"]


# --- Requests that must never be redirected (RFC 6749 4.1.2.1) ---


@pytest.mark.parametrize("client_id", ["no-such-client", "", None])
def test_unknown_or_missing_client_id_gets_error_page_not_redirect(http, client_id):
    response = authorize(http, client_id)
    assert_error_page(response)


def test_disabled_client_is_treated_as_unknown(http):
    rp = make_client()
    rp.client.disabled_at = utcnow()
    db.session.commit()
    disabled = authorize(http, rp.client.client_id)
    unknown = authorize(http, "no-such-client")
    assert_error_page(disabled)
    assert disabled.get_data() == unknown.get_data()


def test_client_disabled_during_sign_in_gets_no_code(http):
    user = make_user()
    rp = make_client()
    page = open_login_page(http, rp.client.client_id)
    rp.client.disabled_at = utcnow()
    db.session.commit()
    response = follow_to_client(http, submit_form(http, page, email=user.email,
                                                  password=PASSWORD))
    assert_error_page(response)


@pytest.mark.parametrize(
    "redirect_uri",
    [
        REDIRECT_URI + "/extra",
        "https://rp.example.org/callback/../callback",
        "https://rp.example.org/other/../callback",
        REDIRECT_URI + "?next=https://evil.example",
        REDIRECT_URI + "/",
        "https://rp.example.org:8443/callback",
        "https://rp.example.org:443/callback",
        "http://rp.example.org/callback",
        "https://rp.example.org@evil.example/callback",
        "https://evil.example@rp.example.org/callback",
        "https://rp.example.org.evil.example/callback",
        REDIRECT_URI + "#fragment",
        "https://rp.example.org/%63allback",
        "https://rp.example.org/callback%2F..%2Fevil",
        "HTTPS://RP.EXAMPLE.ORG/callback",
        REDIRECT_URI + " ",
        "javascript:alert(document.domain)//https://rp.example.org/callback",
        "javascript:alert(1)",
        "https://evil.example/callback",
    ],
)
def test_unregistered_redirect_uri_gets_error_page_not_redirect(http, redirect_uri):
    rp = make_client()
    assert_error_page(authorize(http, rp.client.client_id, redirect_uri=redirect_uri))
    # Not even as a form_post page, which would POST to the attacker's address.
    assert_error_page(authorize(http, rp.client.client_id, redirect_uri=redirect_uri,
                                response_mode="form_post"))


@pytest.mark.parametrize("redirect_uri", [None, ""])
def test_missing_redirect_uri_gets_error_page_not_redirect(http, redirect_uri):
    rp = make_client()
    assert_error_page(authorize(http, rp.client.client_id, redirect_uri=redirect_uri))


def test_redirect_uri_of_another_client_gets_error_page(http):
    rp = make_client()
    other = make_client(redirect_uris=["https://other.example.org/callback"])
    response = authorize(http, rp.client.client_id,
                         redirect_uri=other.client.redirect_uris[0])
    assert_error_page(response)


# --- Errors redirected to a registered redirect URI, with state and iss (RFC 9207) ---


@pytest.mark.parametrize("response_type", ["token", "id_token", "code id_token", "code token"])
def test_unsupported_response_type_is_redirected_with_state_and_iss(http, response_type):
    rp = make_client()
    response = authorize(http, rp.client.client_id, response_type=response_type, state="s-1")
    assert error_redirect(response, state="s-1") == "unsupported_response_type"


@pytest.mark.parametrize("response_type", ["token", "id_token", "code id_token"])
def test_unsupported_response_type_with_attacker_redirect_uri_gets_error_page(
    http, response_type
):
    rp = make_client()
    response = authorize(http, rp.client.client_id, response_type=response_type,
                         redirect_uri="https://evil.example/callback")
    assert_error_page(response)


@pytest.mark.parametrize(
    "pkce",
    [
        {},
        {"code_challenge_method": "S256"},
        {"code_challenge_method": "plain"},
    ],
    ids=["no-challenge", "method-without-challenge", "plain-without-challenge"],
)
def test_public_client_without_s256_code_challenge_gets_invalid_request(http, pkce):
    rp = make_client(public=True)
    response = authorize(http, rp.client.client_id, state="s-2", **pkce)
    assert error_redirect(response, state="s-2") == "invalid_request"


@pytest.mark.parametrize("public", [True, False], ids=["public", "confidential"])
@pytest.mark.parametrize(
    "pkce",
    [
        {"code_challenge_method": "plain"},
        {"code_challenge_method": None},
        {"code_challenge_method": "S512"},
        {"code_challenge_method": "s256"},
    ],
    ids=["plain", "no-method", "unknown-method", "lowercase-method"],
)
def test_code_challenge_needs_method_s256(http, public, pkce):
    rp = make_client(public=public)
    _, challenge = pkce_pair()
    response = authorize(http, rp.client.client_id, state="s-3",
                         code_challenge=challenge, **pkce)
    assert error_redirect(response, state="s-3") == "invalid_request"


@pytest.mark.parametrize("challenge", ["too-short", "x" * 129, "not valid characters!" * 3])
def test_malformed_code_challenge_gets_invalid_request(http, challenge):
    rp = make_client(public=True)
    response = authorize(http, rp.client.client_id, state="s-4", code_challenge=challenge,
                         code_challenge_method="S256")
    assert error_redirect(response, state="s-4") == "invalid_request"


def test_public_client_with_s256_challenge_gets_code_and_tokens(http):
    user = make_user()
    rp = make_client(public=True)
    verifier, challenge = pkce_pair()
    result = sign_in(http, rp.client.client_id, user.email, code_challenge=challenge,
                     code_challenge_method="S256")
    response = exchange_code(http, result.code, rp.client.client_id, verifier=verifier)
    assert response.status_code == 200, response.json
    assert "id_token" in response.json


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("request", "eyJhbGciOiJub25lIn0.eyJzdGF0ZSI6IngifQ.", "request_not_supported"),
        ("request_uri", "https://rp.example.org/request.jwt", "request_uri_not_supported"),
        ("registration", '{"client_name": "x"}', "registration_not_supported"),
    ],
)
def test_request_objects_are_refused_by_redirect(http, name, value, error):
    rp = make_client()
    response = authorize(http, rp.client.client_id, state="s-5", **{name: value})
    assert error_redirect(response, state="s-5") == error


@pytest.mark.parametrize("mode", ["fragment", "query.jwt", "form_post.jwt", "bogus"])
def test_unsupported_response_mode_is_refused_by_redirect(http, mode):
    rp = make_client()
    response = authorize(http, rp.client.client_id, state="s-6", response_mode=mode)
    assert response.status_code == 302
    assert error_redirect(response, state="s-6") == "invalid_request"


# --- Successful requests and the shape of the response ---


def test_authorization_request_by_post_works_like_get(http):
    user = make_user()
    rp = make_client()
    response = follow_to_client(http, authorize_post(http, rp.client.client_id, state="by-post"))
    assert shows_step(response, "password")
    response = follow_to_client(http, submit_form(http, response, email=user.email,
                                                  password=PASSWORD))
    params = authorization_response_params(response)
    assert params["state"] == "by-post" and params["iss"] == ISSUER and params["code"]


def test_unknown_parameters_are_ignored(http):
    user = make_user()
    rp = make_client()
    result = sign_in(http, rp.client.client_id, user.email, state="s-7",
                     foo="bar", claims_locales="de", acr_values_extra="x")
    assert result.state == "s-7" and result.iss == ISSUER


def test_ui_locales_is_accepted(http):
    user = make_user()
    rp = make_client()
    page = open_login_page(http, rp.client.client_id, ui_locales="fr-CA en")
    assert shows_step(page, "password")
    result = sign_in(http, rp.client.client_id, user.email, ui_locales="fr-CA en")
    assert result.iss == ISSUER


@pytest.mark.parametrize(
    "state",
    ["plain", "with space & ampersand=equals", "ünïcödé ✓", "%41%2B+", "x" * 512, "a#b?c/d"],
)
def test_state_is_echoed_exactly_in_success_and_error(http, state):
    user = make_user()
    rp = make_client()
    assert sign_in(http, rp.client.client_id, user.email, state=state).state == state
    response = authorize(http, rp.client.client_id, state=state, response_type="token")
    assert error_redirect(response, state=state) == "unsupported_response_type"


def test_success_response_carries_iss_of_the_issuer(http):
    user = make_user()
    rp = make_client()
    result = sign_in(http, rp.client.client_id, user.email)
    assert result.iss == ISSUER
    assert result.location.startswith(REDIRECT_URI + "?")


def test_form_post_response_mode_posts_code_state_and_iss(http):
    user = make_user()
    rp = make_client()
    page = open_login_page(http, rp.client.client_id, state="s-8", response_mode="form_post")
    response = follow_to_client(http, submit_form(http, page, email=user.email,
                                                  password=PASSWORD))
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert response.mimetype == "text/html"
    assert "no-store" in response.headers["Cache-Control"]
    params = authorization_response_params(response)
    assert set(params) == {"code", "state", "iss"}
    assert params["state"] == "s-8" and params["iss"] == ISSUER
    assert exchange_code(http, params["code"], rp.client.client_id,
                         rp.client_secret).status_code == 200


def test_form_post_error_response_posts_error_state_and_iss(http):
    rp = make_client(public=True)
    response = authorize(http, rp.client.client_id, state="s-9", response_mode="form_post")
    assert response.status_code == 200 and "Location" not in response.headers
    assert error_redirect(response, state="s-9") == "invalid_request"


# --- The hosted sign-in page ---


def test_sign_in_page_has_labelled_fields_button_and_reset_link(http):
    rp = make_client()
    page = open_login_page(http, rp.client.client_id)
    html = page.get_data(as_text=True)
    assert {"Email", "Password"} <= set(parse_labels(html))
    form = parse_forms(html)[0]
    assert form.method == "post" and {"email", "password", "csrf_token"} <= set(form.fields)
    assert "Sign in" in parse_buttons(html)
    assert "Password not working?" in parse_links(html)
    assert rp.client.name in html


def test_successful_credentials_post_answers_the_client_with_303(http):
    # Nothing more to ask: the code goes to the client at once (one round trip fewer), by
    # 303 so the browser GETs it and never re-sends the password form (RFC 9700 4.12).
    user = make_user()
    rp = make_client()
    page = open_login_page(http, rp.client.client_id)
    response = submit_form(http, page, email=user.email, password=PASSWORD)
    assert response.status_code == 303
    assert response.location.startswith(REDIRECT_URI + "?")
    query = parse_qs(urlsplit(response.location).query)
    assert query["code"] and query["state"]


def test_no_commit_shows_the_sign_in_authenticated_on_the_browser_id_from_before(http):
    # Session fixation: a cookie copied (or planted) before the sign-in holds the old
    # browser id. Were the authentication ever committed while the transaction still
    # followed that id, a process dying at that moment would leave the sign-in for the old
    # cookie to finish on another process. So every commit is watched from outside.
    from sqlalchemy import event, text
    from sqlalchemy.orm import Session

    user = make_user()
    rp = make_client()
    page = open_login_page(http, rp.client.client_id)
    tx_id = parse_forms(page.get_data(as_text=True))[0].action.rsplit("/", 1)[1]
    read = text("SELECT browser_id, authenticated_at FROM login_transactions WHERE id = :id")
    with db.engine.connect() as connection:
        before = connection.execute(read, {"id": tx_id}).one().browser_id
    seen = []

    def after_commit(_session):
        with db.engine.connect() as connection:
            row = connection.execute(read, {"id": tx_id}).one()
        seen.append((row.authenticated_at is not None, row.browser_id != before))

    event.listen(Session, "after_commit", after_commit)
    try:
        response = submit_form(http, page, email=user.email, password=PASSWORD)
    finally:
        event.remove(Session, "after_commit", after_commit)
    assert response.status_code == 303
    assert (True, False) not in seen, seen  # authenticated, old id: never
    assert (True, True) in seen, seen


def _failed_sign_in_page(http, client_id: str, email: str) -> str:
    page = open_login_page(http, client_id)
    response = submit_form(http, page, email=email, password="not the password at all")
    assert response.status_code == 200
    tx_id = parse_forms(page.get_data(as_text=True))[0].action.rsplit("/", 1)[1]
    return response.get_data(as_text=True).replace(tx_id, "TX").replace(email, "EMAIL")


def test_wrong_password_and_unknown_email_get_the_same_page(http):
    # Identical apart from the transaction id and the email typed (echoed in its field).
    user = make_user()
    rp = make_client()
    wrong_password = _failed_sign_in_page(http, rp.client.client_id, user.email)
    unknown_email = _failed_sign_in_page(http, rp.client.client_id, "nobody@example.org")
    assert WRONG_CREDENTIALS.replace("'", "&#39;") in wrong_password
    assert wrong_password == unknown_email


def test_failed_sign_in_creates_no_session_and_allows_a_retry(http):
    user = make_user()
    rp = make_client()
    page = open_login_page(http, rp.client.client_id)
    failed = submit_form(http, page, email=user.email, password="not the password at all")
    assert shows_step(failed, "password")
    silent = authorize(http, rp.client.client_id, prompt="none", state="s-10")
    assert error_redirect(silent, state="s-10") == "login_required"
    retried = follow_to_client(http, submit_form(http, failed, email=user.email,
                                                 password=PASSWORD))
    assert authorization_response_params(retried)["code"]


@pytest.mark.parametrize("csrf", ["missing", "other-session"])
def test_credentials_post_without_this_sessions_csrf_token_is_refused(app, http, csrf):
    user = make_user()
    rp = make_client()
    page = open_login_page(http, rp.client.client_id)
    form = parse_forms(page.get_data(as_text=True))[0]
    data = {**form.fields, "email": user.email, "password": PASSWORD}
    if csrf == "missing":
        del data["csrf_token"]
    else:
        other_page = open_login_page(app.test_client(), rp.client.client_id)
        data["csrf_token"] = parse_forms(other_page.get_data(as_text=True))[0].fields[
            "csrf_token"]
        assert data["csrf_token"] != form.fields["csrf_token"]
    response = http.post(form.action, data=data)
    assert_error_page(response)
    silent = authorize(http, rp.client.client_id, prompt="none")
    assert error_redirect(silent) == "login_required"


def test_login_page_opened_in_another_browser_shows_expired_page(app, http):
    rp = make_client()
    response = authorize(http, rp.client.client_id)
    assert response.status_code == 303
    other_browser = app.test_client()
    elsewhere = other_browser.get(response.location)
    assert_error_page(elsewhere)
    assert EXPIRED in elsewhere.get_data(as_text=True)


def test_login_transaction_expires_after_30_minutes(http, clock):
    user = make_user()
    rp = make_client()
    page = open_login_page(http, rp.client.client_id)
    clock.advance(29 * 60)
    assert shows_step(http.get(parse_forms(page.get_data(as_text=True))[0].action), "password")
    clock.advance(2 * 60)
    response = submit_form(http, page, email=user.email, password=PASSWORD)
    assert_error_page(response)
    assert EXPIRED in response.get_data(as_text=True)


def test_completed_login_transaction_cannot_be_replayed(http):
    user = make_user()
    rp = make_client()
    page = open_login_page(http, rp.client.client_id)
    done = follow_to_client(http, submit_form(http, page, email=user.email, password=PASSWORD))
    assert "code" in query_of(done.location)
    tx_url = parse_forms(page.get_data(as_text=True))[0].action
    for replay in (http.get(tx_url),
                   submit_form(http, page, email=user.email, password=PASSWORD)):
        assert_error_page(replay)
        assert EXPIRED in replay.get_data(as_text=True)
