"""Passkeys and security keys: registration at enrolment, a second factor at the challenge,
and "Sign in with a passkey" instead of the password; verified by py_webauthn against what a
software authenticator (real P-256 keys, CBOR, signatures) returns, as a browser would.

The issuer is http://localhost:5000 here: browsers accept a domain as RP ID, not an IP.
"""

from __future__ import annotations

import html
import json

import pytest

from idp.clock import utcnow
from idp.db import db
from idp.mfa import passkeys
from idp.models import MfaMethod, WebAuthnChallenge
from idp.portals import update_portal
from tests import mfa_fixtures
from tests.driver import (
    follow_to_client,
    open_login_page,
    pkce_pair,
    query_of,
    redeem,
    shows_step,
    submit_form,
)
from tests.factories import PASSWORD, make_client, make_mfa_method, make_user
from tests.html_forms import parse_buttons, parse_forms, parse_labels
from tests.webauthn_authenticator import SoftAuthenticator, options_on

# Shared MFA fixtures (a portal requiring MFA, its client, a person, a TOTP seed).
portal = mfa_fixtures.portal
rp = mfa_fixtures.rp
user = mfa_fixtures.user

ISSUER = "http://localhost:5000"
RP_ID = "localhost"
PHISHING_RESISTANT = "urn:portal-idp:acr:phishing-resistant"


@pytest.fixture
def settings_overrides():
    return {"server": {"issuer": ISSUER}}


@pytest.fixture
def authenticator():
    return SoftAuthenticator(origin=ISSUER, rp_id=RP_ID)


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def options_of(page) -> dict:
    """The WebAuthn options of a hosted page (the attribute, unescaped once)."""
    return options_on(page.get_data(as_text=True))


def after_password(http, client_id: str, email: str, **params):
    verifier, challenge = pkce_pair()
    page = open_login_page(http, client_id, code_challenge=challenge,
                           code_challenge_method="S256", **params)
    assert shows_step(page, "password")
    page = follow_to_client(http, submit_form(http, page, email=email, password=PASSWORD))
    return page, verifier


def choose_passkey_at_enrolment(http, page):
    assert shows_step(page, "mfa_enroll")
    return submit_form(http, page, kind="webauthn", action="choose")


def finish(http, response):
    """Follow to the client (past a 'done' page with recovery codes) and return the code."""
    if response.status_code == 200 and "I've saved my codes" in text(response):
        response = http.get(html.unescape(
            text(response).split('class="button" href="')[1].split('"')[0]))
    response = follow_to_client(http, response)
    assert response.status_code in (302, 303), text(response)[:600]
    return query_of(response.location)["code"]


def enrol(http, rp, user, authenticator, label: str = "Work laptop", trust: str = "0"):
    """Sign in with the password and register `authenticator` at enrolment; the claims."""
    page, verifier = after_password(http, rp.client.client_id, user.email)
    page = choose_passkey_at_enrolment(http, page)
    credential = authenticator.create(options_of(page))
    done = submit_form(http, page, credential=credential, label=label, trust_hours=trust)
    assert "Two-step verification is on" in text(done), text(done)[:800]
    code = finish(http, done)
    return redeem(http, rp.client.client_id, rp.client_secret, code, verifier)


def register_directly(user, authenticator, label: str = "Passkey") -> MfaMethod:
    """A confirmed passkey of `user`, stored as registration stores it."""
    authenticator.user_handle = passkeys.user_handle(user)
    method = MfaMethod(user_id=user.id, kind="webauthn", label=label,
                       counter=authenticator.sign_count, data={
                           "credential_id": passkeys.bytes_to_base64url(
                               authenticator.credential_id),
                           "public_key": passkeys.bytes_to_base64url(authenticator.cose_key()),
                           "transports": authenticator.transports,
                           "aaguid": "01020304-0506-0708-0910-111213141516",
                           "backup_eligible": authenticator.backup_eligible,
                       })
    db.session.add(method)
    db.session.flush()
    passkeys.confirm_method(method)
    db.session.commit()
    return method


# -- enrolment -------------------------------------------------------------------------------


def test_passkey_or_security_key_is_offered_at_enrolment_by_name(http, rp, user):
    page, _ = after_password(http, rp.client.client_id, user.email)
    assert "Passkey or security key" in parse_labels(text(page))
    assert {"Authenticator app", "Email", "Text message"} <= set(parse_labels(text(page)))


def test_the_registration_options_name_the_issuer_as_relying_party(http, rp, user):
    page, _ = after_password(http, rp.client.client_id, user.email)
    page = choose_passkey_at_enrolment(http, page)
    options = options_of(page)
    assert options["rp"]["id"] == RP_ID
    assert options["user"]["name"] == user.email
    assert passkeys.base64url_to_bytes(options["user"]["id"]) == user.sub.encode()
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert "Passkey name" in parse_labels(text(page))
    assert "Trust this browser" in text(page)
    assert 'src="/static/webauthn.js"' in text(page) and "<script>" not in text(page)


def test_enrolling_a_passkey_stores_it_and_earns_hwk_and_phishing_resistant(
    http, rp, user, authenticator
):
    claims = enrol(http, rp, user, authenticator, label="  Work   laptop ")
    assert claims["amr"] == ["pwd", "hwk", "mfa"]
    assert claims["acr"] == PHISHING_RESISTANT
    [method] = db.session.scalars(db.select(MfaMethod).filter_by(user_id=user.id)).all()
    assert method.kind == "webauthn" and method.is_confirmed and method.label == "Work laptop"
    assert method.data["credential_id"] == passkeys.bytes_to_base64url(
        authenticator.credential_id)
    assert method.data["public_key"] == passkeys.bytes_to_base64url(authenticator.cose_key())
    assert method.data["transports"] == ["internal"]
    assert method.data["aaguid"] == "01020304-0506-0708-0910-111213141516"
    assert method.data["backup_eligible"] is False
    assert method.counter == 0


def test_a_synced_passkey_earns_swk_and_is_phishing_resistant_too(http, rp, user):
    synced = SoftAuthenticator(origin=ISSUER, rp_id=RP_ID, backup_eligible=True)
    claims = enrol(http, rp, user, synced)
    assert claims["amr"] == ["pwd", "swk", "mfa"]
    assert claims["acr"] == PHISHING_RESISTANT


def test_an_unnamed_security_key_gets_a_default_name(http, rp, user):
    key = SoftAuthenticator(origin=ISSUER, rp_id=RP_ID, transports=["usb", "nfc"])
    enrol(http, rp, user, key, label="")
    method = db.session.scalars(db.select(MfaMethod).filter_by(user_id=user.id)).one()
    assert method.label == "Security key"


@pytest.mark.parametrize("tamper", ["origin", "rp_id"])
def test_a_registration_for_another_site_is_refused(http, rp, user, authenticator, tamper):
    page, _ = after_password(http, rp.client.client_id, user.email)
    page = choose_passkey_at_enrolment(http, page)
    other = {"origin": {"origin": "https://idp.example.evil"},
             "rp_id": {"rp_id": "example.evil"}}[tamper]
    credential = authenticator.create(options_of(page), **other)
    again = submit_form(http, page, credential=credential)
    assert shows_step(again, "mfa_enroll") and "That passkey didn't work" in text(again)
    assert db.session.scalars(db.select(MfaMethod).filter_by(user_id=user.id)).all() == []


def test_a_registration_challenge_works_once(http, rp, user, authenticator):
    page, _ = after_password(http, rp.client.client_id, user.email)
    page = choose_passkey_at_enrolment(http, page)
    credential = authenticator.create(options_of(page))
    form = parse_forms(text(page))[0]
    first = http.post(form.action, data={**form.fields, "credential": credential})
    assert "Two-step verification is on" in text(first)
    rows = db.session.scalars(db.select(WebAuthnChallenge)).all()
    assert [row.used_at is not None for row in rows if row.purpose == "register"] == [True]
    # The same response again (another tab, a replay): the challenge is spent.
    other = SoftAuthenticator(origin=ISSUER, rp_id=RP_ID)
    replayed = json.loads(other.create(options_of(page)))
    with_same_challenge = json.dumps(replayed)
    from idp.mfa.passkeys import Binding, PasskeyError, register_credential

    with pytest.raises(PasskeyError, match="expired"):
        register_credential(user, with_same_challenge, "", Binding(
            login_transaction_id=form.action.split("/login/")[1].split("?")[0]))


def test_a_challenge_of_another_sign_in_is_refused(app, rp, user, authenticator):
    first, second = app.test_client(), app.test_client()
    page_one, _ = after_password(first, rp.client.client_id, user.email)
    page_one = choose_passkey_at_enrolment(first, page_one)
    page_two, _ = after_password(second, rp.client.client_id, user.email)
    page_two = choose_passkey_at_enrolment(second, page_two)
    # The response to the first sign-in's challenge, posted in the second sign-in.
    credential = authenticator.create(options_of(page_one))
    refused = submit_form(second, page_two, credential=credential)
    assert "expired" in text(refused)


# -- a second factor -------------------------------------------------------------------------


def test_the_challenge_accepts_any_of_the_persons_passkeys(http, rp, user, authenticator):
    other = SoftAuthenticator(origin=ISSUER, rp_id=RP_ID, transports=["usb"])
    register_directly(user, other, "Blue key")
    register_directly(user, authenticator, "Work laptop")
    page, verifier = after_password(http, rp.client.client_id, user.email)
    assert shows_step(page, "mfa_challenge")
    assert "Use my passkey" in parse_buttons(text(page))
    options = options_of(page)
    assert options["userVerification"] == "preferred"
    assert {c["id"] for c in options["allowCredentials"]} == {
        passkeys.bytes_to_base64url(a.credential_id) for a in (other, authenticator)}
    done = submit_form(http, page, credential=authenticator.get(options))
    claims = redeem(http, rp.client.client_id, rp.client_secret, finish(http, done), verifier)
    assert claims["amr"] == ["pwd", "hwk", "mfa"] and claims["acr"] == PHISHING_RESISTANT


def test_a_security_key_without_user_verification_still_works_as_a_second_factor(
    http, rp, user
):
    key = SoftAuthenticator(origin=ISSUER, rp_id=RP_ID, verifies_user=False,
                            transports=["usb"])
    register_directly(user, key)
    page, verifier = after_password(http, rp.client.client_id, user.email)
    done = submit_form(http, page, credential=key.get(options_of(page)))
    claims = redeem(http, rp.client.client_id, rp.client_secret, finish(http, done), verifier)
    assert "hwk" in claims["amr"] and "mfa" in claims["amr"]


def test_try_another_method_lists_passkeys_by_their_names(http, rp, user, authenticator):
    register_directly(user, authenticator, "Work laptop")
    make_mfa_method(user, "totp")
    page, _ = after_password(http, rp.client.client_id, user.email)
    choices = http.get(f"{parse_forms(text(page))[0].action}?choose=1")
    assert "Work laptop" in text(choices) and "Passkey or security key" in text(choices)


def test_a_replayed_assertion_is_refused(app, rp, user, authenticator):
    register_directly(user, authenticator)
    first = app.test_client()
    page, _ = after_password(first, rp.client.client_id, user.email)
    credential = authenticator.get(options_of(page))
    form = parse_forms(text(page))[0]
    assert first.post(form.action, data={**form.fields, "credential": credential}) \
        .status_code == 303
    # Posted again in a new sign-in: its challenge was used (and belonged to another).
    second = app.test_client()
    page, _ = after_password(second, rp.client.client_id, user.email)
    again = submit_form(second, page, credential=credential)
    assert shows_step(again, "mfa_challenge") and "expired" in text(again)


def test_a_signature_counter_that_does_not_grow_is_refused(http, rp, user, authenticator):
    method = register_directly(user, authenticator)
    method.counter = 7
    db.session.commit()
    page, _ = after_password(http, rp.client.client_id, user.email)
    cloned = authenticator.get(options_of(page), sign_count=7)
    refused = submit_form(http, page, credential=cloned)
    assert shows_step(refused, "mfa_challenge") and "That passkey didn't work" in text(refused)
    done = submit_form(http, refused, credential=authenticator.get(
        options_of(refused), sign_count=8))
    assert done.status_code == 303
    db.session.refresh(method)
    assert method.counter == 8


def test_an_authenticator_without_a_counter_keeps_working(http, rp, user):
    passkey = SoftAuthenticator(origin=ISSUER, rp_id=RP_ID, keeps_counter=False)
    register_directly(user, passkey)
    for _ in range(2):
        page, _ = after_password(http, rp.client.client_id, user.email, prompt="login")
        done = submit_form(http, page, credential=passkey.get(options_of(page)),
                           trust_hours="0")
        assert done.status_code == 303, text(done)[:300]
        follow_to_client(http, done)


@pytest.mark.parametrize("tamper", [{"origin": "https://idp.example.evil"},
                                    {"rp_id": "example.evil"}])
def test_an_assertion_for_another_site_is_refused(http, rp, user, authenticator, tamper):
    register_directly(user, authenticator)
    page, _ = after_password(http, rp.client.client_id, user.email)
    refused = submit_form(http, page, credential=authenticator.get(
        options_of(page), **tamper))
    assert shows_step(refused, "mfa_challenge") and "That passkey didn't work" in text(refused)


def test_another_persons_passkey_is_not_a_second_factor(http, rp, user):
    stranger = make_user()
    theirs = SoftAuthenticator(origin=ISSUER, rp_id=RP_ID)
    register_directly(stranger, theirs)
    register_directly(user, SoftAuthenticator(origin=ISSUER, rp_id=RP_ID))
    page, _ = after_password(http, rp.client.client_id, user.email)
    refused = submit_form(http, page, credential=theirs.get(options_of(page)))
    assert shows_step(refused, "mfa_challenge")


# -- sign in with a passkey ------------------------------------------------------------------


def sign_in_page(http, client_id: str, **params):
    verifier, challenge = pkce_pair()
    page = open_login_page(http, client_id, code_challenge=challenge,
                           code_challenge_method="S256", **params)
    assert shows_step(page, "password")
    return page, verifier


def test_the_sign_in_page_offers_passkey_autofill_beside_the_unchanged_password_form(http, rp):
    page, _ = sign_in_page(http, rp.client.client_id)
    body = text(page)
    assert parse_labels(body)[:2] == ["Email", "Password"]
    assert parse_buttons(body)[:2] == ["Sign in", "Sign in with a passkey"]
    assert 'autocomplete="username webauthn"' in body
    assert 'data-webauthn="sign-in"' in body
    options = options_of(page)
    assert options["allowCredentials"] == [] and options["userVerification"] == "required"
    assert options["rpId"] == RP_ID


def test_the_password_still_signs_in_beside_passkeys(http, rp, user):
    _, secret = make_mfa_method(user, "totp")
    page, _ = sign_in_page(http, rp.client.client_id)
    after = follow_to_client(http, submit_form(http, page, email=user.email, password=PASSWORD))
    assert shows_step(after, "mfa_challenge")


def test_a_passkey_alone_signs_in_as_two_factors(http, rp, user, authenticator):
    register_directly(user, authenticator)
    page, verifier = sign_in_page(http, rp.client.client_id)
    response = submit_form(http, page, credential=authenticator.get(options_of(page)))
    claims = redeem(http, rp.client.client_id, rp.client_secret, finish(http, response),
                    verifier)
    assert claims["sub"] == user.sub
    assert claims["amr"] == ["hwk", "mfa"]  # no password, no further challenge
    assert claims["acr"] == PHISHING_RESISTANT


def test_signing_in_with_a_passkey_keeps_me_signed_in_when_ticked(http, rp, user,
                                                                   authenticator):
    register_directly(user, authenticator)
    page, _ = sign_in_page(http, rp.client.client_id)
    response = submit_form(http, page, credential=authenticator.get(options_of(page)),
                           keep_signed_in="yes")
    finish(http, response)
    from idp.models import IdpSession

    record = db.session.scalars(db.select(IdpSession).filter_by(user_id=user.id)).one()
    assert record.persistent and record.amr == ["hwk", "mfa"]


def test_signing_in_with_a_passkey_requires_user_verification(http, rp, user):
    key = SoftAuthenticator(origin=ISSUER, rp_id=RP_ID, verifies_user=False)
    register_directly(user, key)
    page, _ = sign_in_page(http, rp.client.client_id)
    refused = submit_form(http, page, credential=key.get(options_of(page)))
    assert shows_step(refused, "password")
    assert "check it's you" in text(refused)


def test_an_unknown_passkey_gets_a_clear_message(http, rp, user):
    stranger = SoftAuthenticator(origin=ISSUER, rp_id=RP_ID)
    stranger.user_handle = b"not-a-known-sub"
    page, _ = sign_in_page(http, rp.client.client_id)
    refused = submit_form(http, page, credential=stranger.get(options_of(page)))
    assert shows_step(refused, "password")
    assert "isn't set up for an account here" in text(refused)


def test_a_disabled_account_cannot_sign_in_with_its_passkey(http, rp, user, authenticator):
    register_directly(user, authenticator)
    user.disabled_at = utcnow()
    db.session.commit()
    page, _ = sign_in_page(http, rp.client.client_id)
    refused = submit_form(http, page, credential=authenticator.get(options_of(page)))
    assert shows_step(refused, "password")


def test_passkey_sign_in_is_not_offered_where_the_portal_does_not_accept_passkeys(
    http, portal, rp, user, authenticator
):
    update_portal(portal.slug, {"mfa_methods": "totp,email"})
    page, _ = sign_in_page(http, rp.client.client_id)
    assert "webauthn" not in text(page)
    assert 'autocomplete="username"' in text(page)


def test_a_legacy_username_portal_keeps_its_field_beside_passkeys(http, portal, rp):
    from tests.legacy import import_rows, legacy_row

    import_rows(portal, legacy_row("agent42"))
    page, _ = sign_in_page(http, rp.client.client_id)
    assert parse_labels(text(page))[:2] == ["Email or username", "Password"]
    assert 'type="text" autocomplete="username webauthn"' in text(page)


# -- acr_values=phishing-resistant -----------------------------------------------------------


def test_a_request_for_phishing_resistant_asks_for_the_passkey_not_the_app(
    http, portal, user, authenticator
):

    update_portal(portal.slug, {"mfa_required_from": ""})
    rp = make_client(portal_slug=portal.slug)
    _, secret = make_mfa_method(user, "totp")
    register_directly(user, authenticator)
    page, verifier = after_password(http, rp.client.client_id, user.email,
                                    acr_values=PHISHING_RESISTANT)
    assert shows_step(page, "mfa_challenge") and "Use my passkey" in parse_buttons(text(page))
    choices = http.get(f"{parse_forms(text(page))[0].action}?choose=1")
    assert "Authenticator app" not in text(choices) and "Recovery code" not in text(choices)
    done = submit_form(http, page, credential=authenticator.get(options_of(page)),
                       trust_hours="720")
    claims = redeem(http, rp.client.client_id, rp.client_secret, finish(http, done), verifier)
    assert claims["acr"] == PHISHING_RESISTANT


def test_a_session_with_the_app_is_stepped_up_to_the_passkey(http, portal, rp, user,
                                                             authenticator):
    from tests.driver import sign_in, with_totp

    app_method, secret = make_mfa_method(user, "totp")
    register_directly(user, authenticator).last_used_at = None
    app_method.last_used_at = utcnow()  # the app was used last: it is asked first
    db.session.commit()
    sign_in(http, rp.client.client_id, user.email, mfa=with_totp(http, secret, "720"))
    # Same browser, trusted, signed in with the app: a phishing-resistant request still
    # asks for the passkey (not the password again).
    verifier, challenge = pkce_pair()
    page = open_login_page(http, rp.client.client_id, acr_values=PHISHING_RESISTANT,
                           code_challenge=challenge, code_challenge_method="S256")
    assert shows_step(page, "mfa_challenge")
    done = submit_form(http, page, credential=authenticator.get(options_of(page)))
    claims = redeem(http, rp.client.client_id, rp.client_secret, finish(http, done), verifier)
    assert "hwk" in claims["amr"] and claims["acr"] == PHISHING_RESISTANT
