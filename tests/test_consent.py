"""Consent: third-party clients ask once per set of scopes; first-party clients never ask."""

from __future__ import annotations

from tests.conftest import ISSUER
from tests.driver import (
    authorization_response_params,
    authorize,
    follow_to_client,
    open_login_page,
    shows_step,
    sign_in,
    submit_form,
)
from tests.factories import PASSWORD, make_client, make_user
from tests.html_forms import parse_buttons


def consent_page(http, client_id: str, email: str, **params):
    """Authorize, sign in if asked, and return the page shown next."""
    page = open_login_page(http, client_id, **params)
    if shows_step(page, "password"):
        page = follow_to_client(http, submit_form(http, page, email=email, password=PASSWORD))
    return page


def test_third_party_client_asks_for_consent_after_sign_in(http):
    user = make_user()
    rp = make_client(first_party=False)
    page = consent_page(http, rp.client.client_id, user.email, scope="openid email")
    assert shows_step(page, "consent")
    html = page.get_data(as_text=True)
    assert rp.client.name in html
    assert "See your email address" in html
    assert "See your name" not in html  # only what was asked for
    assert parse_buttons(html) == ["Allow", "Deny"]


def test_first_party_client_does_not_ask_for_consent(http):
    user = make_user()
    rp = make_client(first_party=True)
    page = open_login_page(http, rp.client.client_id)
    done = follow_to_client(http, submit_form(http, page, email=user.email, password=PASSWORD))
    assert authorization_response_params(done)["code"]


def test_deny_returns_access_denied_with_state_and_iss(http):
    user = make_user()
    rp = make_client(first_party=False)
    page = consent_page(http, rp.client.client_id, user.email, state="c-1")
    denied = follow_to_client(http, submit_form(http, page, action="deny"))
    assert denied.status_code == 302
    params = authorization_response_params(denied)
    assert (params["error"], params["state"], params["iss"]) == ("access_denied", "c-1", ISSUER)
    assert "code" not in params


def test_deny_records_nothing_so_the_next_authorization_asks_again(http):
    user = make_user()
    rp = make_client(first_party=False)
    page = consent_page(http, rp.client.client_id, user.email)
    follow_to_client(http, submit_form(http, page, action="deny"))
    assert shows_step(consent_page(http, rp.client.client_id, user.email), "consent")


def test_denying_consent_keeps_the_person_signed_in(http):
    user = make_user()
    third_party = make_client(first_party=False)
    page = consent_page(http, third_party.client.client_id, user.email)
    follow_to_client(http, submit_form(http, page, action="deny"))
    first_party = make_client(first_party=True)
    silent = follow_to_client(http, authorize(http, first_party.client.client_id, prompt="none"))
    assert authorization_response_params(silent)["code"]


def test_allow_records_consent_so_the_next_authorization_skips_it(http):
    user = make_user()
    rp = make_client(first_party=False)
    page = consent_page(http, rp.client.client_id, user.email, state="c-2")
    allowed = follow_to_client(http, submit_form(http, page, action="allow"))
    assert authorization_response_params(allowed)["state"] == "c-2"
    again = authorize(http, rp.client.client_id, state="c-3")
    assert again.status_code == 302
    assert authorization_response_params(again)["code"]
    silent = authorize(http, rp.client.client_id, prompt="none")
    assert authorization_response_params(silent)["code"]


def test_consent_is_remembered_after_signing_in_again(app, http):
    user = make_user()
    rp = make_client(first_party=False)
    sign_in(http, rp.client.client_id, user.email)
    other_browser = app.test_client()
    page = open_login_page(other_browser, rp.client.client_id)
    done = follow_to_client(other_browser, submit_form(other_browser, page, email=user.email,
                                                       password=PASSWORD))
    assert authorization_response_params(done)["code"]


def test_consent_of_one_person_does_not_count_for_another(app, http):
    rp = make_client(first_party=False)
    sign_in(http, rp.client.client_id, make_user().email)
    other_browser = app.test_client()
    page = consent_page(other_browser, rp.client.client_id, make_user().email)
    assert shows_step(page, "consent")


def test_consent_for_one_client_does_not_count_for_another(http):
    user = make_user()
    rp, other_rp = make_client(first_party=False), make_client(first_party=False)
    sign_in(http, rp.client.client_id, user.email)
    assert shows_step(open_login_page(http, other_rp.client.client_id), "consent")


def test_requesting_more_scopes_asks_again_for_the_new_ones(http):
    user = make_user()
    rp = make_client(first_party=False)
    sign_in(http, rp.client.client_id, user.email, scope="openid email")
    page = open_login_page(http, rp.client.client_id, scope="openid email phone")
    assert shows_step(page, "consent")
    assert "See your phone number" in page.get_data(as_text=True)
    follow_to_client(http, submit_form(http, page, action="allow"))
    # Fewer scopes than were granted: no question.
    fewer = authorize(http, rp.client.client_id, scope="openid phone")
    assert authorization_response_params(fewer)["code"]


def test_prompt_consent_asks_again_despite_stored_consent(http):
    user = make_user()
    rp = make_client(first_party=False)
    sign_in(http, rp.client.client_id, user.email)
    page = open_login_page(http, rp.client.client_id, prompt="consent")
    assert shows_step(page, "consent")


def test_consent_form_without_csrf_token_is_refused(http):
    user = make_user()
    rp = make_client(first_party=False)
    page = consent_page(http, rp.client.client_id, user.email)
    response = submit_form(http, page, action="allow", csrf_token="")
    assert response.status_code == 400 and "Location" not in response.headers
    assert shows_step(consent_page(http, rp.client.client_id, user.email), "consent")
