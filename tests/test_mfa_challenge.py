"""The `mfa_challenge` step: a real TOTP client with clock drift and replay, the portal's
policy and acr_values, "Try another method", prompt=none, throttling."""

from __future__ import annotations

import html

import pytest

from idp.db import db
from idp.mfa.methods import THROTTLE_AFTER
from idp.portals import update_portal
from tests import mfa_fixtures
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
    with_totp,
)
from tests.factories import PASSWORD, make_client, make_mfa_method
from tests.html_forms import parse_labels, parse_links

# Shared MFA fixtures (a portal requiring MFA, its client, a person, a TOTP seed).
portal = mfa_fixtures.portal
rp = mfa_fixtures.rp
secret = mfa_fixtures.secret
user = mfa_fixtures.user


MFA_ACR = "urn:portal-idp:acr:mfa"


def text(response) -> str:
    """The page as a person reads it (entities decoded)."""
    return html.unescape(response.get_data(as_text=True))


def challenge_page(http, client_id: str, email: str, **params):
    page = open_login_page(http, client_id, **params)
    assert shows_step(page, "password")
    page = follow_to_client(http, submit_form(http, page, email=email, password=PASSWORD))
    assert shows_step(page, "mfa_challenge"), text(page)[:300]
    return page


def signed_in_with(response) -> bool:
    response_location = response.location if response.status_code in (302, 303) else ""
    return "code" in query_of(response_location)


# -- the authenticator app with a real TOTP client --------------------------------------------


def test_the_challenge_takes_the_code_in_a_field_labelled_code(http, rp, user, secret):
    page = challenge_page(http, rp.client.client_id, user.email)
    html = text(page)
    assert "Code" in parse_labels(html)
    assert "Try another method" in parse_links(html)
    assert "Trust this browser" in html


@pytest.mark.parametrize("drift", [-1, 0, 1])
def test_codes_within_one_step_of_drift_are_accepted(http, rp, user, secret, drift):
    page = challenge_page(http, rp.client.client_id, user.email)
    done = follow_to_client(http, answer_mfa(http, page, totp_code(secret, drift)))
    assert signed_in_with(done)


@pytest.mark.parametrize("drift", [-2, 2])
def test_codes_two_steps_off_are_refused(http, rp, user, secret, drift):
    page = challenge_page(http, rp.client.client_id, user.email)
    if totp_code(secret, drift) in {totp_code(secret, d) for d in (-1, 0, 1)}:
        pytest.skip("the two codes happen to be equal")  # one chance in ~330,000
    again = answer_mfa(http, page, totp_code(secret, drift))
    assert shows_step(again, "mfa_challenge") and "That code didn't work" in text(again)


def test_a_code_cannot_be_used_twice(app, rp, user, secret):
    code = totp_code(secret)
    first = app.test_client()
    page = challenge_page(first, rp.client.client_id, user.email)
    assert signed_in_with(follow_to_client(first, answer_mfa(first, page, code)))
    second = app.test_client()
    page = challenge_page(second, rp.client.client_id, user.email)
    again = answer_mfa(second, page, code)
    assert shows_step(again, "mfa_challenge") and "That code didn't work" in text(again)


def test_an_older_code_is_refused_after_a_newer_one_was_accepted(app, rp, user, secret):
    first = app.test_client()
    page = challenge_page(first, rp.client.client_id, user.email)
    assert signed_in_with(follow_to_client(first, answer_mfa(first, page, totp_code(secret))))
    second = app.test_client()
    page = challenge_page(second, rp.client.client_id, user.email)
    assert shows_step(answer_mfa(second, page, totp_code(secret, -1)), "mfa_challenge")


def test_the_id_token_says_pwd_otp_mfa_and_the_mfa_acr(http, rp, user, secret):
    verifier, challenge = pkce_pair()
    result = sign_in(http, rp.client.client_id, user.email, mfa=with_totp(http, secret),
                     code_challenge=challenge, code_challenge_method="S256")
    claims = redeem(http, rp.client.client_id, rp.client_secret, result.code, verifier)
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["acr"] == MFA_ACR
    assert "auth_time" in claims


def test_guessing_is_throttled_after_repeated_wrong_codes(http, clock, rp, user, secret):
    page = challenge_page(http, rp.client.client_id, user.email)
    wrong = f"{(int(totp_code(secret)) + 500000) % 1000000:06d}"
    for _ in range(THROTTLE_AFTER):
        page = answer_mfa(http, page, wrong)
    throttled = answer_mfa(http, page, totp_code(secret))
    assert "Too many wrong codes" in text(throttled)
    clock.advance(31)
    done = follow_to_client(http, answer_mfa(http, throttled, totp_code(secret)))
    assert signed_in_with(done)


# -- when it is asked -------------------------------------------------------------------------


def test_not_asked_when_neither_the_portal_nor_the_client_requires_mfa(http, user, secret):
    rp = make_client()
    result = sign_in(http, rp.client.client_id, user.email)
    assert result.code


def test_asked_when_the_client_sends_acr_values_mfa(http, user, secret):
    rp = make_client()
    challenge_page(http, rp.client.client_id, user.email, acr_values=MFA_ACR)


def test_not_asked_again_at_single_sign_on_after_mfa(app, http, rp, portal, user, secret):
    sign_in(http, rp.client.client_id, user.email, mfa=with_totp(http, secret))
    other = make_client(portal_slug=portal.slug)
    response = follow_to_client(http, authorize(http, other.client.client_id))
    assert signed_in_with(response)


def test_max_age_asks_for_the_password_and_the_second_factor_again(http, clock, rp, user, secret):
    sign_in(http, rp.client.client_id, user.email, mfa=with_totp(http, secret))
    clock.advance(120)
    page = open_login_page(http, rp.client.client_id, max_age="60")
    assert shows_step(page, "password")
    page = follow_to_client(http, submit_form(http, page, email=user.email, password=PASSWORD))
    assert shows_step(page, "mfa_challenge")


def test_prompt_none_needing_the_challenge_answers_interaction_required(http, portal, user,
                                                                          secret):
    plain = make_client()  # no portal: no MFA
    sign_in(http, plain.client.client_id, user.email)
    rp = make_client(portal_slug=portal.slug)
    response = authorize(http, rp.client.client_id, prompt="none", state="s-1")
    assert response.status_code == 302
    answer = query_of(response.location)
    assert answer["error"] == "interaction_required" and answer["state"] == "s-1"


# -- other methods ----------------------------------------------------------------------------


def test_try_another_method_lists_every_method_and_recovery_codes(http, rp, user, secret):
    make_mfa_method(user, "email")
    make_mfa_method(user, "sms", "+12035550163")
    page = challenge_page(http, rp.client.client_id, user.email)
    choices = http.get(parse_links(text(page))["Try another method"])
    links = parse_links(text(choices))
    assert {"Authenticator app", "Email", "Text message", "Recovery code"} <= set(links)
    assert "+12035550163" not in text(choices) and "63" in text(choices)


def test_the_portal_policy_limits_the_methods_asked_for(http, portal, rp, user, secret):
    email = make_mfa_method(user, "email")
    update_portal(portal.slug, {"mfa_methods": "email"})
    page = challenge_page(http, rp.client.client_id, user.email)
    assert f'value="{email.id}"' in text(page)
    choices = http.get(parse_links(text(page))["Try another method"])
    assert "Authenticator app" not in parse_links(text(choices))
    db.session.rollback()


def test_a_request_for_phishing_resistant_gets_mfa_and_an_honest_acr(http, user, secret):
    rp = make_client()
    verifier, challenge = pkce_pair()
    result = sign_in(http, rp.client.client_id, user.email, mfa=with_totp(http, secret),
                     acr_values="urn:portal-idp:acr:phishing-resistant",
                     code_challenge=challenge, code_challenge_method="S256")
    claims = redeem(http, rp.client.client_id, rp.client_secret, result.code, verifier)
    assert claims["acr"] == MFA_ACR  # passkeys (hwk) will earn phishing-resistant
