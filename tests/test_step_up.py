"""Step-up: a session signed in with a password only is asked for a second factor (not the
password again) by acr_values or by a portal that requires MFA; the ID token says so."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from idp.portals import create_portal, update_portal
from tests.driver import (
    answer_mfa,
    authorize,
    follow_to_client,
    open_login_page,
    pkce_pair,
    query_of,
    redeem,
    shows_step,
    sign_in,
    submit_form,
    totp_code,
)
from tests.factories import PASSWORD, make_client, make_mfa_method, make_user

MFA_ACR = "urn:portal-idp:acr:mfa"
PASSWORD_ACR = "urn:portal-idp:acr:password"


@pytest.fixture
def rp(app):
    return make_client()  # no portal: its policy never requires MFA


@pytest.fixture
def user(app):
    return make_user()


@pytest.fixture
def secret(user):
    return make_mfa_method(user, "totp")[1]


def password_session(http, rp, user) -> dict:
    """Sign in with the password only; the ID token's claims."""
    verifier, challenge = pkce_pair()
    result = sign_in(http, rp.client.client_id, user.email, code_challenge=challenge,
                     code_challenge_method="S256")
    claims = redeem(http, rp.client.client_id, rp.client_secret, result.code, verifier)
    assert claims["amr"] == ["pwd"] and claims["acr"] == PASSWORD_ACR
    return claims


def test_acr_values_step_a_password_session_up_without_asking_the_password(
    http, clock, rp, user, secret
):
    first = password_session(http, rp, user)
    clock.advance(600)
    verifier, challenge = pkce_pair()
    page = open_login_page(http, rp.client.client_id, acr_values=MFA_ACR,
                           code_challenge=challenge, code_challenge_method="S256")
    assert shows_step(page, "mfa_challenge")  # not the password form
    done = follow_to_client(http, answer_mfa(http, page, totp_code(secret)))
    claims = redeem(http, rp.client.client_id, rp.client_secret,
                    query_of(done.location)["code"], verifier)
    assert claims["acr"] == MFA_ACR
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["auth_time"] >= first["auth_time"] + 600  # the step-up authenticated now
    assert claims["sid"] == first["sid"]  # the same session, stepped up


def test_a_portal_that_requires_mfa_steps_the_session_up(http, rp, user, secret):
    password_session(http, rp, user)
    portal = create_portal("members", "Members Only")
    update_portal(portal.slug, {"mfa_required_from": str(date.today() - timedelta(days=3))})
    members = make_client(portal_slug=portal.slug)
    page = open_login_page(http, members.client.client_id)
    assert shows_step(page, "mfa_challenge")
    done = follow_to_client(http, answer_mfa(http, page, totp_code(secret)))
    assert "code" in query_of(done.location)


def test_after_the_step_up_the_session_answers_mfa_requests_silently(http, rp, user, secret):
    password_session(http, rp, user)
    page = open_login_page(http, rp.client.client_id, acr_values=MFA_ACR)
    follow_to_client(http, answer_mfa(http, page, totp_code(secret)))
    verifier, challenge = pkce_pair()
    response = authorize(http, rp.client.client_id, acr_values=MFA_ACR, prompt="none",
                         code_challenge=challenge, code_challenge_method="S256")
    claims = redeem(http, rp.client.client_id, rp.client_secret,
                    query_of(response.location)["code"], verifier)
    assert claims["acr"] == MFA_ACR and "otp" in claims["amr"]


def test_prompt_none_cannot_step_up(http, rp, user, secret):
    password_session(http, rp, user)
    response = authorize(http, rp.client.client_id, acr_values=MFA_ACR, prompt="none",
                         state="s-9")
    assert query_of(response.location)["error"] == "interaction_required"


def test_without_a_method_the_step_up_enrols_one_without_the_password(http, rp):
    person = make_user()
    password_session(http, rp, person)
    page = open_login_page(http, rp.client.client_id, acr_values=MFA_ACR)
    assert shows_step(page, "mfa_enroll") and "Skip for now" not in page.get_data(as_text=True)


def test_max_age_still_asks_for_the_password_before_the_second_factor(
    http, clock, rp, user, secret
):
    password_session(http, rp, user)
    clock.advance(300)
    page = open_login_page(http, rp.client.client_id, acr_values=MFA_ACR, max_age="60")
    assert shows_step(page, "password")
    page = follow_to_client(http, submit_form(http, page, email=user.email, password=PASSWORD))
    assert shows_step(page, "mfa_challenge")
