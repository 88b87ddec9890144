"""Trust this browser: 24 hours or 30 days (30 preselected), honoured after signing out,
asked again on a new browser, for another person, or after the period."""

from __future__ import annotations

from datetime import timedelta

from werkzeug.wrappers import Response

from idp.db import db
from idp.mfa.reset import reset_mfa
from idp.mfa.trusted import trust_browser, trusted_devices
from idp.models import TrustedDevice
from tests import mfa_fixtures
from tests.conftest import make_settings
from tests.driver import (
    answered_with_code,
    follow_to_client,
    open_login_page,
    pkce_pair,
    query_of,
    redeem,
    shows_step,
    submit_form,
    totp_code,
)
from tests.factories import PASSWORD, make_mfa_method, make_user
from tests.html_forms import parse_forms

# Shared MFA fixtures (a portal requiring MFA, its client, a person, a TOTP seed).
portal = mfa_fixtures.portal
rp = mfa_fixtures.rp
secret = mfa_fixtures.secret
user = mfa_fixtures.user

HOUR, DAY = 3600, 86400
COOKIE = "idp_device"  # on an http:// issuer (tests)


def after_password(http, client_id: str, email: str, **params):
    page = open_login_page(http, client_id, **params)
    assert shows_step(page, "password")
    return follow_to_client(http, submit_form(http, page, email=email, password=PASSWORD))


def pass_challenge(http, page, secret: str, clock=None, trust_hours: str | None = None):
    """Answer with a fresh code (moving past the last used step), keeping or choosing trust."""
    if clock is not None:
        clock.advance(30)
    values = {"code": totp_code(secret)}
    if trust_hours is not None:
        values["trust_hours"] = trust_hours
    response = submit_form(http, page, **values)
    return response, follow_to_client(http, response)


def sign_out(http, rp) -> None:
    """RP-initiated logout of the browser's session."""
    sid_page = http.get("/logout", query_string={"client_id": rp.client.client_id})
    form = parse_forms(sid_page.get_data(as_text=True))[0]
    http.post(form.action, data=form.fields)


def signed_in(response) -> bool:
    return answered_with_code(response)


def test_30_days_is_preselected_and_the_cookie_is_httponly(http, rp, user, secret):
    page = after_password(http, rp.client.client_id, user.email)
    assert parse_forms(page.get_data(as_text=True))[0].fields["trust_hours"] == "720"
    response, done = pass_challenge(http, page, secret)
    assert signed_in(done)
    [cookie] = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE + "=")]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Max-Age=2592000" in cookie
    [row] = trusted_devices(user)
    assert row.device_hash not in cookie  # only the hash is stored


def test_a_trusted_browser_skips_mfa_after_signing_out_and_says_so_in_the_id_token(
    http, clock, rp, user, secret
):

    page = after_password(http, rp.client.client_id, user.email)
    pass_challenge(http, page, secret)
    sign_out(http, rp)
    clock.advance(29 * DAY)
    verifier, challenge = pkce_pair()
    done = after_password(http, rp.client.client_id, user.email, code_challenge=challenge,
                          code_challenge_method="S256")
    assert signed_in(done)
    claims = redeem(http, rp.client.client_id, rp.client_secret,
                    query_of(done.location)["code"], verifier)
    assert claims["amr"] == ["pwd", "mfa"]
    assert claims["acr"] == "urn:portal-idp:acr:mfa"


def test_the_trust_ends_after_the_period(http, clock, rp, user, secret):
    page = after_password(http, rp.client.client_id, user.email)
    pass_challenge(http, page, secret)
    sign_out(http, rp)
    clock.advance(30 * DAY + 60)
    assert shows_step(after_password(http, rp.client.client_id, user.email), "mfa_challenge")


def test_24_hours_lasts_24_hours(http, clock, rp, user, secret):
    page = after_password(http, rp.client.client_id, user.email)
    pass_challenge(http, page, secret, trust_hours="24")
    sign_out(http, rp)
    clock.advance(23 * HOUR)
    assert signed_in(after_password(http, rp.client.client_id, user.email))
    sign_out(http, rp)
    clock.advance(2 * HOUR)
    assert shows_step(after_password(http, rp.client.client_id, user.email), "mfa_challenge")


def test_not_trusting_asks_every_time(http, clock, rp, user, secret):
    page = after_password(http, rp.client.client_id, user.email)
    response, _ = pass_challenge(http, page, secret, trust_hours="0")
    assert not any(h.startswith(COOKIE) for h in response.headers.getlist("Set-Cookie"))
    sign_out(http, rp)
    assert shows_step(after_password(http, rp.client.client_id, user.email), "mfa_challenge")


def test_a_new_browser_is_asked(app, clock, rp, user, secret):
    first = app.test_client()
    pass_challenge(first, after_password(first, rp.client.client_id, user.email), secret)
    other = app.test_client()
    assert shows_step(after_password(other, rp.client.client_id, user.email), "mfa_challenge")


def test_the_trust_is_bound_to_the_person(http, clock, rp, user, secret):
    pass_challenge(http, after_password(http, rp.client.client_id, user.email), secret)
    sign_out(http, rp)
    colleague = make_user()
    colleague_secret = make_mfa_method(colleague, "totp")[1]
    page = after_password(http, rp.client.client_id, colleague.email)
    assert shows_step(page, "mfa_challenge")
    # Both may trust the same browser; each keeps their own period.
    pass_challenge(http, page, colleague_secret, clock)
    assert db.session.scalar(db.select(db.func.count(TrustedDevice.id))) == 2
    sign_out(http, rp)
    assert signed_in(after_password(http, rp.client.client_id, user.email))


def test_an_mfa_reset_ends_the_trust(http, clock, rp, user, secret):
    pass_challenge(http, after_password(http, rp.client.client_id, user.email), secret)
    sign_out(http, rp)
    reset_mfa(user, "lost phone, ticket 123")
    assert shows_step(after_password(http, rp.client.client_id, user.email), "mfa_enroll")


def test_over_https_the_cookie_is_secure_with_the_host_prefix(tmp_path, template_database):
    from idp import create_app

    instance = tmp_path / "instance"
    template_database.copy_to(instance)
    app = create_app(make_settings(instance, server={"issuer": "https://idp.example.org"}))
    with app.app_context():
        user = make_user()
        with app.test_request_context("/", base_url="https://idp.example.org"):
            trust_browser(user, 24)
            response = app.process_response(Response("ok"))
        [cookie] = response.headers.getlist("Set-Cookie")
        assert cookie.startswith("__Host-idp-device=")
        assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/" in cookie
        assert "Domain" not in cookie
        db.session.remove()
        db.engine.dispose()


def test_a_password_change_revokes_the_trusted_browsers(app, user):
    from idp.account.completion import set_new_password
    from idp.clock import utcnow

    trust = TrustedDevice(user_id=user.id, device_hash="b" * 64,
                          expires_at=utcnow() + timedelta(days=30))
    db.session.add(trust)
    db.session.commit()
    set_new_password(user, app.extensions["idp"].passwords.hash("a brand new passphrase"))
    db.session.refresh(trust)
    assert trust.revoked_at is not None and trusted_devices(user) == []
