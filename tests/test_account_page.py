"""/account: methods by name and date, changes behind a fresh MFA, the last method kept while
a portal requires MFA, recovery codes, trusted browsers revoked; CSRF on every form."""

from __future__ import annotations

import html
import re
from datetime import date, timedelta

import pytest

from idp.db import db
from idp.mfa.recovery import generate_recovery_codes, use_recovery_code
from idp.models import MfaMethod, TrustedDevice
from idp.portals import create_portal, update_portal
from tests.driver import (
    follow_to_client,
    open_login_page,
    shows_step,
    sign_in,
    submit_form,
    totp_code,
    with_totp,
)
from tests.factories import PASSWORD, make_client, make_mfa_method, make_user
from tests.html_forms import parse_forms, parse_labels
from tests.webauthn_authenticator import SoftAuthenticator, options_on

FRESH_MINUTES = 10


@pytest.fixture
def settings_overrides():
    return {"server": {"issuer": "http://localhost:5000"}}  # passkeys need a domain


@pytest.fixture
def portal(app):
    return create_portal("mls", "Lakeside MLS")


@pytest.fixture
def rp(portal):
    return make_client(portal_slug=portal.slug)


@pytest.fixture
def user(app):
    return make_user()


@pytest.fixture
def secret(user):
    return make_mfa_method(user, "totp")[1]


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def require_mfa(portal) -> None:
    update_portal(portal.slug, {"mfa_required_from": str(date.today() - timedelta(days=1))})


def signed_in_with_mfa(http, rp, user, secret, trust_hours: str = "0") -> None:
    """Sign in at the portal with the password and the app's code (acr_values asks for it)."""
    sign_in(http, rp.client.client_id, user.email, mfa=with_totp(http, secret, trust_hours),
            acr_values="urn:portal-idp:acr:mfa")


def form_with_action(page, path_part: str):
    form = next(f for f in parse_forms(page.get_data(as_text=True)) if path_part in f.action)
    return form


def post_form(http, page, path_part: str, **values: str):
    form = form_with_action(page, path_part)
    return http.post(form.action, data={**form.fields, **values})


# -- who may see it --------------------------------------------------------------------------


def test_the_account_page_needs_a_signed_in_browser(http):
    response = http.get("/account")
    assert response.status_code == 401
    assert "You're not signed in" in text(response)


def test_it_lists_methods_by_name_and_date_only(http, rp, user, secret):
    make_mfa_method(user, "sms", "+12035550163")
    signed_in_with_mfa(http, rp, user, secret)
    page = http.get("/account")
    assert page.status_code == 200
    body = text(page)
    assert "Authenticator app" in body and "Text message" in body
    assert "Added " in body
    assert "+12035550163" not in body and "0163" not in body  # no number, not even masked


def test_every_form_needs_the_csrf_token(http, rp, user, secret):
    signed_in_with_mfa(http, rp, user, secret)
    method = db.session.scalars(db.select(MfaMethod).filter_by(user_id=user.id)).one()
    response = http.post(f"/account/methods/{method.id}/remove", data={})
    assert response.status_code == 400
    assert db.session.get(MfaMethod, method.id) is not None


# -- changes need a fresh MFA ----------------------------------------------------------------


def test_removing_a_method_needs_a_fresh_second_factor(http, clock, rp, user, secret):
    email = make_mfa_method(user, "email")
    signed_in_with_mfa(http, rp, user, secret)
    clock.advance(FRESH_MINUTES * 60 + 1)
    page = http.get("/account")
    response = post_form(http, page, f"/methods/{email.id}/remove")
    assert response.status_code == 303 and "/account/verify" in response.location
    assert db.session.get(MfaMethod, email.id) is not None

    verify = http.get(response.location)
    assert "Verify it's you" in text(verify) and "Code" in parse_labels(text(verify))
    clock.advance(30)  # a new time step: the sign-in's code cannot be used twice
    back = submit_form(http, verify, code=totp_code(secret))
    assert back.status_code == 303 and back.location.endswith("/account")

    page = http.get("/account")
    removed = post_form(http, page, f"/methods/{email.id}/remove")
    assert removed.status_code == 200 and "Removed" in text(removed)
    assert db.session.get(MfaMethod, email.id) is None


def test_a_sign_in_within_ten_minutes_is_fresh_enough(http, clock, rp, user, secret):
    email = make_mfa_method(user, "email")
    signed_in_with_mfa(http, rp, user, secret)
    clock.advance(FRESH_MINUTES * 60 - 30)
    removed = post_form(http, http.get("/account"), f"/methods/{email.id}/remove")
    assert removed.status_code == 200 and db.session.get(MfaMethod, email.id) is None


def test_a_trusted_browser_is_not_a_fresh_second_factor(http, clock, rp, user, secret):
    email = make_mfa_method(user, "email")
    signed_in_with_mfa(http, rp, user, secret, trust_hours="720")
    clock.advance(FRESH_MINUTES * 60 + 1)
    # Signing in again on the trusted browser asks no code, and earns no fresh MFA.
    sign_in(http, rp.client.client_id, user.email, prompt="login",
            acr_values="urn:portal-idp:acr:mfa")
    response = post_form(http, http.get("/account"), f"/methods/{email.id}/remove")
    assert response.status_code == 303 and "/account/verify" in response.location


def test_a_recovery_code_is_a_fresh_second_factor(http, clock, rp, user, secret):
    email = make_mfa_method(user, "email")
    codes = generate_recovery_codes(user)
    signed_in_with_mfa(http, rp, user, secret)
    clock.advance(FRESH_MINUTES * 60 + 1)
    verify = http.get("/account/verify?method=recovery&next=/account")
    submit_form(http, verify, code=codes[0])
    removed = post_form(http, http.get("/account"), f"/methods/{email.id}/remove")
    assert removed.status_code == 200 and db.session.get(MfaMethod, email.id) is None


def test_renaming_a_method_needs_a_fresh_second_factor_too(http, clock, rp, user, secret):
    signed_in_with_mfa(http, rp, user, secret)
    method = db.session.scalars(db.select(MfaMethod).filter_by(user_id=user.id)).one()
    renamed = post_form(http, http.get("/account"), f"/methods/{method.id}/rename",
                        label="  My phone ")
    assert "Renamed to “My phone”" in text(renamed)
    db.session.refresh(method)
    assert method.label == "My phone"
    clock.advance(FRESH_MINUTES * 60 + 1)
    response = post_form(http, http.get("/account"), f"/methods/{method.id}/rename",
                         label="Other")
    assert response.status_code == 303 and "/account/verify" in response.location


def test_another_persons_method_cannot_be_touched(http, rp, user, secret):
    stranger = make_user()
    theirs = make_mfa_method(stranger, "email")
    signed_in_with_mfa(http, rp, user, secret)
    page = http.get("/account")
    token = form_with_action(page, "/remove").fields["csrf_token"]
    response = http.post(f"/account/methods/{theirs.id}/remove", data={"csrf_token": token})
    assert response.status_code == 404
    assert db.session.get(MfaMethod, theirs.id) is not None


# -- the last method -------------------------------------------------------------------------


def test_the_last_method_stays_while_a_portal_of_the_person_requires_mfa(
    http, portal, rp, user, secret
):
    require_mfa(portal)
    signed_in_with_mfa(http, rp, user, secret)
    method = db.session.scalars(db.select(MfaMethod).filter_by(user_id=user.id)).one()
    page = http.get("/account")
    assert "your last method can't be removed" in text(page)
    refused = post_form(http, page, f"/methods/{method.id}/remove")
    assert refused.status_code == 200 and "This is your last verification method" in text(refused)
    assert db.session.get(MfaMethod, method.id) is not None


def test_the_last_method_can_go_where_no_portal_requires_mfa(http, rp, user, secret):
    signed_in_with_mfa(http, rp, user, secret)
    method = db.session.scalars(db.select(MfaMethod).filter_by(user_id=user.id)).one()
    removed = post_form(http, http.get("/account"), f"/methods/{method.id}/remove")
    assert "Removed" in text(removed)
    assert db.session.get(MfaMethod, method.id) is None
    assert "You haven't set up two-step verification yet" in text(removed)


# -- recovery codes --------------------------------------------------------------------------


def test_new_recovery_codes_replace_the_old_ones(http, rp, user, secret):
    old = generate_recovery_codes(user)
    signed_in_with_mfa(http, rp, user, secret)
    page = http.get("/account")
    assert "You have 10 unused recovery codes" in text(page)
    shown = post_form(http, page, "/recovery-codes")
    new = re.findall(r"<code>([a-z0-9-]{19})</code>", shown.get_data(as_text=True))
    assert len(new) == 10 and not set(new) & set(old)
    assert not use_recovery_code(user, old[0])
    assert use_recovery_code(user, new[0])


# -- adding methods --------------------------------------------------------------------------


def test_a_passkey_is_added_from_the_account_page(http, rp, user, secret):
    signed_in_with_mfa(http, rp, user, secret)
    page = http.get("/account/add/webauthn")
    assert "Passkey name" in parse_labels(text(page))
    passkey = SoftAuthenticator(origin="http://localhost:5000", rp_id="localhost")
    credential = passkey.create(options_on(page.get_data(as_text=True)))
    added = submit_form(http, page, credential=credential, label="Phone")
    assert "Phone is set up" in text(added)
    method = db.session.scalars(db.select(MfaMethod).filter_by(kind="webauthn")).one()
    assert method.user_id == user.id and method.label == "Phone"
    assert "Phone" in text(http.get("/account"))


def test_an_authenticator_app_is_added_as_a_first_method_with_recovery_codes(http, rp, user):
    sign_in(http, rp.client.client_id, user.email)  # no method yet: no MFA asked
    page = http.get("/account/add/totp")
    assert page.status_code == 200
    secret = re.search(r'class="secret"[^>]*>([A-Z2-7 ]+)<', text(page)).group(1)
    added = submit_form(http, page, code=totp_code(secret.replace(" ", "")))
    assert "Authenticator app is set up" in text(added)
    assert len(re.findall(r"<code>", added.get_data(as_text=True))) == 10


def test_adding_a_second_method_needs_a_fresh_second_factor(http, clock, rp, user, secret):
    signed_in_with_mfa(http, rp, user, secret)
    clock.advance(FRESH_MINUTES * 60 + 1)
    response = http.get("/account/add/email")
    assert response.status_code == 303
    assert "/account/verify" in response.location and "next=/account/add/email" in \
        response.location.replace("%2F", "/")


def test_the_verify_page_only_returns_to_account_pages(http, clock, rp, user, secret):
    signed_in_with_mfa(http, rp, user, secret)
    clock.advance(FRESH_MINUTES * 60 + 1)
    verify = http.get("/account/verify?next=https://evil.example/steal")
    clock.advance(30)
    back = submit_form(http, verify, code=totp_code(secret))
    assert back.status_code == 303 and back.location == "/account"


# -- trusted browsers ------------------------------------------------------------------------


def test_a_trusted_browser_is_listed_and_revoked(http, portal, rp, user, secret):
    require_mfa(portal)
    signed_in_with_mfa(http, rp, user, secret, trust_hours="720")
    page = http.get("/account")
    assert "(this browser)" in text(page)
    revoked = post_form(http, page, "/trusted/")
    assert "will ask for verification again" in text(revoked)
    row = db.session.scalars(db.select(TrustedDevice).filter_by(user_id=user.id)).one()
    assert row.revoked_at is not None
    # The next sign-in on this browser asks for the second factor again.
    page = open_login_page(http, rp.client.client_id, prompt="login")
    after = follow_to_client(http, submit_form(http, page, email=user.email, password=PASSWORD))
    assert shows_step(after, "mfa_challenge")


def test_revoking_needs_no_fresh_second_factor(http, clock, rp, user, secret):
    signed_in_with_mfa(http, rp, user, secret, trust_hours="720")
    clock.advance(FRESH_MINUTES * 60 + 1)
    revoked = post_form(http, http.get("/account"), "/trusted/revoke-all")
    assert "Revoked 1 trusted browser." in text(revoked)


def test_the_password_saved_page_links_to_the_account_page(app):
    from idp.account.completion import done_page

    with app.test_request_context():
        assert 'href="/account"' in done_page()
