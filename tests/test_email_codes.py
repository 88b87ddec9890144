"""Codes by email, delivered over real SMTP: 5 minutes, single use, 5 tries, resend cooldown,
and first-time setup that corrects the address (the code proves it)."""

from __future__ import annotations

import html
import re

import pytest

from idp.db import db
from idp.mfa import codes
from idp.mfa.codes import CodeCheck
from idp.models import MfaCode, MfaMethod
from idp.notify.worker import deliver_due
from idp.portals import update_portal
from tests import mfa_fixtures
from tests.driver import (
    answer_mfa,
    answered_with_code,
    follow_to_client,
    open_login_page,
    shows_step,
)
from tests.driver import submit_form as submit
from tests.factories import PASSWORD, make_mfa_method, make_user
from tests.smtp_server import smtp_settings

# Shared MFA fixtures (a portal requiring MFA, its client, a person, a TOTP seed).
portal = mfa_fixtures.portal
rp = mfa_fixtures.rp


@pytest.fixture
def settings_overrides(smtp_server):
    return smtp_settings(smtp_server)


@pytest.fixture
def user(app):
    return make_user("pat@example.org")


@pytest.fixture
def method(user):
    return make_mfa_method(user, "email")


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def emailed_codes(smtp_server, to: str) -> list[str]:
    """Deliver the outbox over SMTP; the codes `to` received, oldest first."""
    deliver_due()
    found = []
    for message in smtp_server.messages:
        if message["To"] == to:
            found += re.findall(r"\b(\d{6})\b", smtp_server.text_of(message))
    return found


def challenge_page(http, client_id: str, email: str):
    page = open_login_page(http, client_id)
    page = follow_to_client(http, submit(http, page, email=email, password=PASSWORD))
    assert shows_step(page, "mfa_challenge")
    return page


def resend(http, page):
    """Press "Resend code" (the page's second form)."""
    from tests.html_forms import parse_forms

    form = parse_forms(page.get_data(as_text=True))[1]
    assert form.buttons == {"action": "resend"}
    return http.post(form.action, data={**form.fields, "action": "resend"})


def signed_in(response) -> bool:
    return answered_with_code(response)


def test_the_code_arrives_over_smtp_and_signs_in(http, smtp_server, rp, user, method):
    page = challenge_page(http, rp.client.client_id, user.email)
    assert "pat@example.org" in text(page) and "Resend code" in text(page)
    [code] = emailed_codes(smtp_server, "pat@example.org")
    [message] = smtp_server.messages
    assert message["Subject"] == "Your Lakeside MLS verification code"
    assert message["From"] == "Portal IdP <no-reply@idp.example>"
    assert signed_in(follow_to_client(http, answer_mfa(http, page, code)))


def test_reloading_the_page_does_not_send_another_code(http, smtp_server, rp, user, method):
    page = challenge_page(http, rp.client.client_id, user.email)
    http.get(page.request.path)
    assert len(emailed_codes(smtp_server, user.email)) == 1


def test_the_code_expires_after_5_minutes(http, clock, smtp_server, rp, user, method):
    page = challenge_page(http, rp.client.client_id, user.email)
    [code] = emailed_codes(smtp_server, user.email)
    clock.advance(5 * 60 + 1)
    again = answer_mfa(http, page, code)
    assert shows_step(again, "mfa_challenge") and CodeCheck.EXPIRED.value in text(again)


def test_the_code_still_works_just_before_5_minutes(http, clock, smtp_server, rp, user, method):
    page = challenge_page(http, rp.client.client_id, user.email)
    [code] = emailed_codes(smtp_server, user.email)
    clock.advance(5 * 60 - 2)
    assert signed_in(follow_to_client(http, answer_mfa(http, page, code)))


def test_a_code_works_once(app, smtp_server, rp, user, method):
    assert codes.check_code(method, "000000")[0] is CodeCheck.MISSING
    codes.send_code(method, "Lakeside MLS")
    [code] = emailed_codes(smtp_server, user.email)
    assert codes.check_code(method, code)[0] is CodeCheck.OK
    assert codes.check_code(method, code)[0] is CodeCheck.MISSING


def test_five_wrong_tries_and_then_even_the_right_code_is_refused(
    http, smtp_server, rp, user, method
):
    page = challenge_page(http, rp.client.client_id, user.email)
    [code] = emailed_codes(smtp_server, user.email)
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    for _ in range(5):
        page = answer_mfa(http, page, wrong)
        assert CodeCheck.WRONG.value in text(page)
    refused = answer_mfa(http, page, code)
    assert shows_step(refused, "mfa_challenge") and CodeCheck.EXHAUSTED.value in text(refused)


def test_resend_waits_30_seconds_then_sends_a_new_code_that_replaces_the_old(
    http, clock, smtp_server, rp, user, method
):
    page = challenge_page(http, rp.client.client_id, user.email)
    too_soon = resend(http, page)
    assert "Please wait" in text(too_soon) and "seconds before asking for another code" in text(
        too_soon)
    clock.advance(31)
    sent = resend(http, page)
    assert "We sent a new code" in text(sent)
    old, new = emailed_codes(smtp_server, user.email)
    refused = answer_mfa(http, sent, old)
    assert shows_step(refused, "mfa_challenge")
    assert signed_in(follow_to_client(http, answer_mfa(http, refused, new)))


def test_codes_are_stored_hashed(app, smtp_server, user, method):
    codes.send_code(method, "Lakeside MLS")
    [code] = emailed_codes(smtp_server, user.email)
    stored = db.session.scalars(db.select(MfaCode.code_hash)).one()
    assert code not in stored and len(stored) == 64


def test_first_time_setup_may_correct_the_address_and_the_code_proves_it(
    http, smtp_server, portal, rp, user
):

    update_portal(portal.slug, {"mfa_methods": "email"})  # the email form straight away
    page = open_login_page(http, rp.client.client_id)
    page = follow_to_client(http, submit(http, page, email=user.email, password=PASSWORD))
    assert shows_step(page, "mfa_enroll") and 'value="pat@example.org"' in text(page)
    page = submit(http, page, address="Pat.Work@Example.org")
    assert "pat.work@example.org" in text(page)
    assert emailed_codes(smtp_server, user.email) == []
    [code] = emailed_codes(smtp_server, "pat.work@example.org")
    done = answer_mfa(http, page, code)
    assert "Two-step verification is on" in text(done)
    method = db.session.scalars(db.select(MfaMethod)).one()
    assert method.kind == "email" and method.destination == "pat.work@example.org"
    assert method.confirmed_at is not None
    db.session.refresh(user)
    assert user.email == "pat@example.org"  # the username is not the MFA destination


def test_a_mistyped_address_is_refused_with_a_message(http, smtp_server, portal, rp, user):
    update_portal(portal.slug, {"mfa_methods": "email"})
    page = open_login_page(http, rp.client.client_id)
    page = follow_to_client(http, submit(http, page, email=user.email, password=PASSWORD))
    again = submit(http, page, address="pat@")
    assert shows_step(again, "mfa_enroll") and "Enter an email address" in text(again)
