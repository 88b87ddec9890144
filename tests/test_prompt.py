"""prompt, max_age and id_token_hint at the authorization endpoint (OIDC Core 3.1.2.1)."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.conftest import ISSUER
from tests.driver import (
    authorization_response_params,
    authorize,
    follow_to_client,
    id_token_for,
    open_login_page,
    shows_step,
    sign_in,
    submit_form,
)
from tests.factories import PASSWORD, make_client, make_user
from tests.html_forms import parse_forms


@pytest.fixture
def signed_in(http):
    """A person signed in on `http` (the browser) at a first-party client."""
    user = make_user()
    rp = make_client()
    sign_in(http, rp.client.client_id, user.email)
    return user, rp


def answer(response, state: str | None = None) -> dict[str, str]:
    """The authorization response the client receives, with iss checked (RFC 9207)."""
    params = authorization_response_params(response)
    assert params["iss"] == ISSUER
    if state is not None:
        assert params["state"] == state
    return params


# --- prompt ---


def test_prompt_none_without_session_redirects_login_required_without_ui(http):
    rp = make_client()
    response = authorize(http, rp.client.client_id, prompt="none", state="p-1")
    assert response.status_code == 302
    assert answer(response, state="p-1") == {"error": "login_required", "state": "p-1",
                                             "iss": ISSUER}


def test_prompt_none_with_session_returns_code_without_ui(http, signed_in):
    _, rp = signed_in
    response = authorize(http, rp.client.client_id, prompt="none", state="p-2")
    assert response.status_code == 302
    assert answer(response, state="p-2")["code"]


def test_session_is_reused_without_showing_the_password_form(http, signed_in):
    _, rp = signed_in
    other_rp = make_client()
    response = authorize(http, other_rp.client.client_id)
    assert answer(response)["code"]


def test_prompt_login_with_session_shows_the_password_form_again(http, signed_in):
    user, rp = signed_in
    page = open_login_page(http, rp.client.client_id, prompt="login", state="p-3")
    assert shows_step(page, "password")
    done = follow_to_client(http, submit_form(http, page, email=user.email, password=PASSWORD))
    assert answer(done, state="p-3")["code"]


def test_prompt_consent_shows_consent_screen_even_for_first_party_client(http, signed_in):
    _, rp = signed_in
    assert rp.client.first_party
    page = open_login_page(http, rp.client.client_id, prompt="consent", state="p-4")
    assert shows_step(page, "consent")
    done = follow_to_client(http, submit_form(http, page, action="allow"))
    assert answer(done, state="p-4")["code"]


def test_prompt_none_when_consent_is_needed_returns_consent_required(http, signed_in):
    third_party = make_client(first_party=False)
    response = authorize(http, third_party.client.client_id, prompt="none", state="p-5")
    assert response.status_code == 302
    assert answer(response, state="p-5")["error"] == "consent_required"


@pytest.mark.parametrize("prompt", ["none login", "login none", "none consent",
                                    "none select_account"])
@pytest.mark.parametrize("with_session", [True, False], ids=["session", "no-session"])
def test_prompt_none_combined_with_another_value_is_invalid_request(http, prompt,
                                                                     with_session):
    user = make_user()
    rp = make_client()
    if with_session:
        sign_in(http, rp.client.client_id, user.email)
    response = authorize(http, rp.client.client_id, prompt=prompt, state="p-6")
    assert response.status_code == 302
    assert answer(response, state="p-6")["error"] == "invalid_request"


# --- max_age ---


def test_max_age_zero_forces_the_password_step_despite_a_session(http, signed_in):
    user, rp = signed_in
    page = open_login_page(http, rp.client.client_id, max_age="0")
    assert shows_step(page, "password")
    done = follow_to_client(http, submit_form(http, page, email=user.email, password=PASSWORD))
    assert answer(done)["code"]


def test_session_within_max_age_needs_no_password(http, signed_in, clock):
    _, rp = signed_in
    clock.advance(20 * 60)  # within max_age and within the default 30-minute idle timeout
    response = authorize(http, rp.client.client_id, max_age="3600")
    assert answer(response)["code"]


def test_session_older_than_max_age_must_sign_in_again(http, signed_in, clock):
    _, rp = signed_in
    clock.advance(3601)
    page = open_login_page(http, rp.client.client_id, max_age="3600")
    assert shows_step(page, "password")


def test_session_older_than_max_age_with_prompt_none_gets_login_required(
    http, signed_in, clock
):
    _, rp = signed_in
    clock.advance(3601)
    response = authorize(http, rp.client.client_id, max_age="3600", prompt="none",
                         state="p-7")
    assert answer(response, state="p-7")["error"] == "login_required"


@pytest.mark.parametrize("max_age", ["-1", "abc", "1.5", "1e3", " 5", "99999999999", "²",
                                     "٣"])
def test_invalid_max_age_is_invalid_request(http, signed_in, max_age):
    _, rp = signed_in  # with a session, so that max_age is actually compared
    response = authorize(http, rp.client.client_id, max_age=max_age, state="p-8")
    assert response.status_code == 302
    assert answer(response, state="p-8")["error"] == "invalid_request"


def test_empty_max_age_is_treated_as_omitted(http, signed_in):
    # RFC 6749 3.1: parameters sent without a value are treated as if omitted.
    _, rp = signed_in
    response = authorize(http, rp.client.client_id, max_age="")
    assert answer(response)["code"]


# --- login_hint and id_token_hint ---


def test_login_hint_prefills_email_and_is_only_a_hint(http):
    user = make_user()
    rp = make_client()
    page = open_login_page(http, rp.client.client_id, login_hint="someone.else@example.org")
    assert parse_forms(page.get_data(as_text=True))[0].fields["email"] == (
        "someone.else@example.org"
    )
    done = follow_to_client(http, submit_form(http, page, email=user.email, password=PASSWORD))
    assert answer(done)["code"]


def test_id_token_hint_of_another_user_with_prompt_none_gets_login_required(app, http):
    rp = make_client()
    someone, other_person = make_user(), make_user()
    hint = id_token_for(app.test_client(), rp.client.client_id, rp.client_secret,
                        other_person.email)
    sign_in(http, rp.client.client_id, someone.email)
    response = authorize(http, rp.client.client_id, prompt="none", id_token_hint=hint,
                         state="p-9")
    assert answer(response, state="p-9")["error"] == "login_required"


def test_id_token_hint_of_another_user_asks_for_the_password(app, http):
    rp = make_client()
    someone, other_person = make_user(), make_user()
    hint = id_token_for(app.test_client(), rp.client.client_id, rp.client_secret,
                        other_person.email)
    sign_in(http, rp.client.client_id, someone.email)
    page = open_login_page(http, rp.client.client_id, id_token_hint=hint)
    assert shows_step(page, "password")


def test_expired_id_token_hint_of_the_signed_in_user_is_accepted(http, clock):
    from idp.db import db
    from idp.portals import create_portal

    portal = create_portal("long-idle", "Long Idle Portal")
    portal.policy = portal.policy.with_changes(idle_timeout_minutes=240)
    db.session.commit()
    user = make_user()
    rp = make_client(portal_slug="long-idle")
    hint = id_token_for(http, rp.client.client_id, rp.client_secret, user.email)
    clock.advance(2 * 3600)  # past the ID token's exp, within the session
    response = authorize(http, rp.client.client_id, prompt="none", id_token_hint=hint)
    assert answer(response)["code"]


def _foreign_token() -> str:
    key = RSAKey.generate_key(2048)
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "someone", "aud": "x", "iat": now, "exp": now + 600}
    return jwt.encode({"alg": "RS256", "kid": "foreign"}, claims, key, algorithms=["RS256"])


@pytest.mark.parametrize(
    "hint",
    [
        "garbage",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwOi8vMTI3LjAuMC4xOjUwMDAiLCJzdWIiOiJ4In0.",
        "x" * 20000,
        None,  # replaced by a token signed with a key that is not ours
    ],
    ids=["garbage", "three-parts", "alg-none", "huge", "signed-by-another-key"],
)
def test_invalid_id_token_hint_is_invalid_request_to_the_client(http, signed_in, hint):
    _, rp = signed_in
    response = authorize(http, rp.client.client_id, prompt="none", state="p-10",
                         id_token_hint=hint or _foreign_token())
    assert response.status_code == 302
    assert answer(response, state="p-10")["error"] == "invalid_request"
