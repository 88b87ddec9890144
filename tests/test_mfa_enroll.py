"""The `mfa_enroll` step: required from the portal's date (or by acr_values), offered and
skippable before it, with the authenticator app, email and text message by name."""

from __future__ import annotations

import html
import re
from datetime import date, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from idp.db import db
from idp.models import MfaMethod, MfaSkip, RecoveryCode
from idp.portals import create_portal, update_portal
from tests.driver import (
    answer_mfa,
    answered_with_code,
    follow_to_client,
    id_token_claims,
    open_login_page,
    pkce_pair,
    query_of,
    redeem,
    shown_totp_secret,
    shows_step,
    sign_in,
    submit_form,
    totp_code,
)
from tests.factories import PASSWORD, make_client, make_user
from tests.html_forms import parse_forms, parse_labels, parse_links

MFA_ACR = "urn:portal-idp:acr:mfa"


@pytest.fixture
def portal(app):
    return create_portal("mls", "Lakeside MLS")


@pytest.fixture
def rp(portal):
    return make_client(portal_slug=portal.slug)


@pytest.fixture
def user(app):
    return make_user()


def set_policy(portal, **settings: object) -> None:
    update_portal(portal.slug, {key: str(value) for key, value in settings.items()})


def require_mfa_from(portal, days_from_today: int, **more: object) -> None:
    set_policy(portal, mfa_required_from=date.today() + timedelta(days=days_from_today), **more)


def after_password(http, client_id: str, email: str, **params):
    """Authorize and sign in with the password; the page that follows."""
    page = open_login_page(http, client_id, **params)
    assert shows_step(page, "password")
    return follow_to_client(http, submit_form(http, page, email=email, password=PASSWORD))


def text(response) -> str:
    """The page as a person reads it (entities decoded)."""
    return html.unescape(response.get_data(as_text=True))


KIND_OF = {"Authenticator app": "totp", "Email": "email", "Text message": "sms"}


def choose(http, page, name: str):
    """Choose the method called `name` on the enrolment page and continue."""
    assert name in parse_labels(text(page)), parse_labels(text(page))
    return submit_form(http, page, kind=KIND_OF[name], action="choose")


# -- when -------------------------------------------------------------------------------------


def test_without_a_policy_date_there_is_no_mfa_screen(http, rp, user):
    response = after_password(http, rp.client.client_id, user.email)
    assert answered_with_code(response)


def test_from_the_date_on_enrolment_is_required_and_offers_the_three_methods_by_name(
    http, portal, rp, user
):
    require_mfa_from(portal, 0)
    page = after_password(http, rp.client.client_id, user.email)
    assert shows_step(page, "mfa_enroll")
    assert {"Authenticator app", "Email", "Text message"} <= set(parse_labels(text(page)))
    assert "Skip for now" not in text(page)
    # Posting a skip anyway is refused.
    refused = submit_form(http, page, action="skip")
    assert shows_step(refused, "mfa_enroll") and "can no longer be skipped" in text(refused)


def test_before_the_date_enrolment_can_be_skipped_as_often_as_the_policy_allows(
    app, portal, rp, user
):
    require_mfa_from(portal, 30, mfa_skips_allowed=2)
    for left in (2, 1):
        browser = app.test_client()
        page = after_password(browser, rp.client.client_id, user.email)
        assert shows_step(page, "mfa_enroll")
        assert f"You can skip {left} more time" in text(page)
        done = follow_to_client(browser, submit_form(browser, page, action="skip"))
        assert answered_with_code(done)
    browser = app.test_client()
    page = after_password(browser, rp.client.client_id, user.email)
    assert shows_step(page, "mfa_enroll") and "Skip for now" not in text(page)
    assert db.session.scalar(db.select(db.func.count(MfaSkip.id))) == 2


def test_skips_are_counted_per_person_across_portals(app, portal, rp, user):
    other_portal = create_portal("church", "Grace Church")
    other_rp = make_client(portal_slug=other_portal.slug)
    require_mfa_from(portal, 30, mfa_skips_allowed=1)
    require_mfa_from(other_portal, 60, mfa_skips_allowed=1)
    browser = app.test_client()
    page = after_password(browser, rp.client.client_id, user.email)
    follow_to_client(browser, submit_form(browser, page, action="skip"))
    page = after_password(app.test_client(), other_rp.client.client_id, user.email)
    assert shows_step(page, "mfa_enroll") and "Skip for now" not in text(page)


def test_a_skipped_offer_is_not_repeated_at_single_sign_on(http, portal, rp, user):
    require_mfa_from(portal, 30)
    page = after_password(http, rp.client.client_id, user.email)
    follow_to_client(http, submit_form(http, page, action="skip"))
    again = follow_to_client(http, http.get("/authorize", query_string={
        "client_id": rp.client.client_id, "response_type": "code", "scope": "openid",
        "redirect_uri": "https://rp.example.org/callback"}))
    assert again.status_code == 302 and "code" in query_of(again.location)


def test_the_date_switch_turns_the_offer_into_a_requirement(app, clock, portal, rp, user):
    require_mfa_from(portal, 1)
    page = after_password(app.test_client(), rp.client.client_id, user.email)
    assert "Skip for now" in text(page)
    clock.advance(86400 * 2)
    page = after_password(app.test_client(), rp.client.client_id, user.email)
    assert shows_step(page, "mfa_enroll") and "Skip for now" not in text(page)


def test_acr_values_asking_for_mfa_require_enrolment_without_a_portal_policy(http, rp, user):
    page = after_password(http, rp.client.client_id, user.email, acr_values=MFA_ACR)
    assert shows_step(page, "mfa_enroll") and "Skip for now" not in text(page)


def test_prompt_none_with_enrolment_needed_answers_interaction_required(http, portal, rp, user):
    sign_in(http, rp.client.client_id, user.email)  # a session from before the date
    require_mfa_from(portal, 0)
    response = http.get("/authorize", query_string={
        "client_id": rp.client.client_id, "response_type": "code", "scope": "openid",
        "redirect_uri": "https://rp.example.org/callback", "prompt": "none", "state": "s"})
    assert response.status_code == 302
    assert query_of(response.location)["error"] == "interaction_required"


# -- the authenticator app ------------------------------------------------------------------


def test_the_authenticator_app_page_shows_a_local_qr_code_and_the_key_as_text(
    http, portal, rp, user
):
    require_mfa_from(portal, 0)
    page = choose(http, after_password(http, rp.client.client_id, user.email),
                  "Authenticator app")
    page_html = text(page)
    assert '<img class="qr" src="data:image/svg+xml' in page_html
    secret = shown_totp_secret(page)
    assert len(secret) == 32
    uri = parse_links(page_html)["Open in an authenticator app on this device"]
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth" and parts.netloc == "totp"
    assert unquote(parts.path) == f"/Lakeside MLS:{user.email}"
    query = parse_qs(parts.query)
    assert query["secret"] == [secret] and query["issuer"] == ["Lakeside MLS"]
    assert "Code" in parse_labels(page_html)
    # The same key until it is confirmed (a reload does not change what was scanned).
    assert shown_totp_secret(http.get(parse_forms(page_html)[0].action)) == secret
    # The seed is encrypted at rest.
    [pending] = db.session.scalars(db.select(MfaMethod)).all()
    assert pending.confirmed_at is None and secret not in (pending.secret_encrypted or "")


def test_enrolling_an_authenticator_app_signs_in_with_amr_otp_and_acr_mfa(
    http, portal, rp, user
):
    require_mfa_from(portal, 0)
    verifier, challenge = pkce_pair()
    page = open_login_page(http, rp.client.client_id, code_challenge=challenge,
                           code_challenge_method="S256", nonce="n-1")
    page = follow_to_client(http, submit_form(http, page, email=user.email, password=PASSWORD))
    page = choose(http, page, "Authenticator app")
    done = answer_mfa(http, page, totp_code(shown_totp_secret(page)))
    assert done.status_code == 200 and "Two-step verification is on" in text(done)
    response = follow_to_client(http, http.get(parse_links(text(done))[
        "I've saved my codes: continue"]))
    code = query_of(response.location)["code"]
    claims = redeem(http, rp.client.client_id, rp.client_secret, code, verifier)
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["acr"] == MFA_ACR
    method = db.session.scalars(db.select(MfaMethod)).one()
    assert method.kind == "totp" and method.confirmed_at is not None


def test_a_wrong_code_does_not_enrol_the_app(http, portal, rp, user):
    require_mfa_from(portal, 0)
    page = choose(http, after_password(http, rp.client.client_id, user.email),
                  "Authenticator app")
    right = totp_code(shown_totp_secret(page))
    wrong = f"{(int(right) + 1) % 1000000:06d}"
    again = answer_mfa(http, page, wrong)
    assert shows_step(again, "mfa_enroll") and "That code didn't work" in text(again)
    assert db.session.scalars(db.select(MfaMethod)).one().confirmed_at is None


def test_recovery_codes_are_shown_once_after_enrolment_and_stored_hashed(http, portal, rp, user):
    require_mfa_from(portal, 0)
    page = choose(http, after_password(http, rp.client.client_id, user.email),
                  "Authenticator app")
    done = answer_mfa(http, page, totp_code(shown_totp_secret(page)))
    shown = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", text(done))
    assert len(shown) == 10 and len(set(shown)) == 10
    stored = db.session.scalars(db.select(RecoveryCode.code_hash)).all()
    assert len(stored) == 10 and not set(shown) & set(stored)
    after = follow_to_client(http, http.get(parse_links(text(done))[
        "I've saved my codes: continue"]))
    assert after.status_code == 302  # on to the portal; the codes are never shown again


# -- methods on offer -------------------------------------------------------------------------


def test_text_message_is_offered_with_a_notice_of_its_risk(http, portal, rp, user):
    require_mfa_from(portal, 0)
    page = after_password(http, rp.client.client_id, user.email)
    assert "SIM card" in text(page)


def test_text_message_is_not_offered_without_a_stronger_method(http, portal, rp, user):
    require_mfa_from(portal, 0, mfa_methods="email,sms")
    page = after_password(http, rp.client.client_id, user.email)
    # Only email is left, so its form is shown straight away.
    assert shows_step(page, "mfa_enroll")
    assert "Text message" not in parse_labels(text(page))
    assert parse_forms(text(page))[0].fields["kind"] == "email"


def test_a_policy_that_allows_only_methods_not_built_yet_says_so(http, portal, rp, user):
    require_mfa_from(portal, 0, mfa_methods="webauthn")
    page = after_password(http, rp.client.client_id, user.email)
    assert shows_step(page, "mfa_enroll") is False
    assert "can't set up here yet" in text(page)


def test_without_mfa_the_id_token_says_password_only(http, rp, user):
    from tests.driver import id_token_for

    token = id_token_for(http, rp.client.client_id, rp.client_secret, user.email)
    claims = id_token_claims(http, token)
    assert claims["amr"] == ["pwd"] and claims["acr"] == "urn:portal-idp:acr:password"


def test_passkeys_are_not_offered_on_an_issuer_at_an_ip_address(http, portal, rp, user):
    # The tests' issuer is http://127.0.0.1:5000: browsers refuse an IP address as RP ID.
    require_mfa_from(portal, 0)
    page = open_login_page(http, rp.client.client_id)
    assert "webauthn" not in page.get_data(as_text=True)
    assert 'autocomplete="username"' in page.get_data(as_text=True)
    page = after_password(http, rp.client.client_id, user.email)
    assert shows_step(page, "mfa_enroll") and "Passkey or security key" not in text(page)
