"""Refresh tokens of a sign-in that passed MFA on a trusted browser keep the portal's app
signed in for the trust period, past the browser session's idle timeout and maximum (the
seed: "if you just close the app, the trust period you chose will be honored")."""

from __future__ import annotations

from datetime import date

from idp.db import db
from idp.mfa.trusted import revoke_trusted_devices
from idp.models import IdpSession
from idp.portals import create_portal, update_portal
from tests import mfa_fixtures
from tests.driver import obtain_tokens, refresh_tokens, with_totp
from tests.factories import make_client
from tests.html_forms import parse_forms

# Shared MFA fixtures (a portal requiring MFA, its client, a person, a TOTP seed).
portal = mfa_fixtures.portal
rp = mfa_fixtures.rp
secret = mfa_fixtures.secret
user = mfa_fixtures.user

HOUR, DAY = 3600, 86400
IDLE = 31 * 60  # the default policy's idle timeout is 30 minutes


def app_signs_in(http, rp, user, secret, trust_hours: str) -> dict:
    return obtain_tokens(http, rp.client.client_id, user.email, rp.client_secret,
                         mfa=with_totp(http, secret, trust_hours))


def refresh(http, rp, token: dict):
    return refresh_tokens(http, token["refresh_token"], rp.client.client_id, rp.client_secret)


def test_with_a_trusted_browser_the_app_stays_signed_in_after_the_session_ends(
    http, clock, rp, user, secret
):

    tokens = app_signs_in(http, rp, user, secret, trust_hours="720")
    clock.advance(IDLE)
    record = db.session.scalars(db.select(IdpSession).filter_by(user_id=user.id)).one()
    assert not record.is_current()  # the browser session timed out
    response = refresh(http, rp, tokens)
    assert response.status_code == 200, response.json
    clock.advance(20 * DAY)  # well past the session maximum, within the 30 days
    assert refresh(http, rp, response.json).status_code == 200


def test_without_trust_the_refresh_token_ends_with_the_session(http, clock, rp, user, secret):
    tokens = app_signs_in(http, rp, user, secret, trust_hours="0")
    clock.advance(IDLE)
    response = refresh(http, rp, tokens)
    assert response.status_code == 400 and response.json["error"] == "invalid_grant"


def test_the_app_is_signed_out_when_the_trust_period_ends(http, clock, rp, user, secret):
    tokens = app_signs_in(http, rp, user, secret, trust_hours="24")
    clock.advance(23 * HOUR)
    tokens = refresh(http, rp, tokens).json
    assert "refresh_token" in tokens
    clock.advance(2 * HOUR)
    assert refresh(http, rp, tokens).status_code == 400


def test_revoking_the_trust_signs_the_app_out(http, clock, rp, user, secret):
    tokens = app_signs_in(http, rp, user, secret, trust_hours="720")
    clock.advance(IDLE)
    revoke_trusted_devices(user)
    assert refresh(http, rp, tokens).status_code == 400


def test_signing_out_still_signs_the_app_out(http, rp, user, secret):
    tokens = app_signs_in(http, rp, user, secret, trust_hours="720")
    confirm = http.get("/logout", query_string={"client_id": rp.client.client_id})
    form = parse_forms(confirm.get_data(as_text=True))[0]
    http.post(form.action, data=form.fields)
    assert refresh(http, rp, tokens).status_code == 400


def test_a_later_sign_in_on_the_trusted_browser_is_kept_too(http, clock, user, secret):
    plain = make_client()  # asks no MFA itself
    portal_rp = make_client(portal_slug=create_portal("other", "Other").slug)
    update_portal("other", {"mfa_required_from": str(date.today())})
    app_signs_in(http, portal_rp, user, secret, trust_hours="720")
    clock.advance(IDLE)
    tokens = obtain_tokens(http, plain.client.client_id, user.email, plain.client_secret,
                           prompt="login")
    clock.advance(IDLE)
    # The trusted browser is its second factor ("mfa" in its amr), so the trust keeps it.
    assert refresh(http, plain, tokens).status_code == 200
