"""The outbox in the admin console: what was sent to whom, never the secrets; retry."""

from __future__ import annotations

import re

import pytest

from idp.account.reset import send_reset_email
from idp.db import db
from idp.models import AuditEvent, Contact, OutboxMessage
from idp.models.outbox import FAILED, QUEUED, SENT
from idp.notify.outbox import queue_email, queue_sms
from idp.notify.worker import deliver_due
from idp.portals import create_portal
from tests.admin_fixtures import console_form, console_sign_in, make_staff
from tests.factories import make_user

CODE = "493817"


@pytest.fixture
def messages(app):
    """A reset link to Pat (Lakeside), a code to Ruth (Grace) by email and by text, and a
    message that failed for good."""
    lakeside = create_portal("lakeside", "Lakeside MLS")
    grace = create_portal("grace", "Grace Church")
    pat = make_user("pat@example.org")
    ruth = make_user("ruth@example.org")
    db.session.add_all([Contact(portal_id=lakeside.id, external_id="L-1", user_id=pat.id),
                        Contact(portal_id=grace.id, external_id="G-1", user_id=ruth.id)])
    send_reset_email(pat, lakeside)
    code_mail = queue_email(ruth.email, "verify_email", code=CODE, name="Ruth",
                            portal_name="Grace Church", minutes=5)
    queue_sms("+12035550163", "mfa_code", f"Your Grace Church code is {CODE}")
    failed = queue_email(pat.email, "mfa_reset", name="Pat")
    failed.status, failed.attempts = FAILED, 5
    failed.last_error = "SMTP 550: mailbox unavailable"
    db.session.commit()
    reset = db.session.scalars(
        db.select(OutboxMessage).filter_by(kind="reset_password")).one()
    token = re.search(r"/password/([A-Za-z0-9_-]{20,})", reset.body_text).group(1)
    assert CODE in code_mail.subject  # the subject of this kind holds the code itself
    return {"token": token, "failed": failed, "reset": reset, "code_mail": code_mail}


def outbox_page(http, **query) -> str:
    response = http.get("/admin/outbox", query_string=query)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def retry(http, message_id: int, **data: str):
    token = console_form(http, "/admin/outbox")
    return http.post(f"/admin/outbox/{message_id}/retry", data={**token, **data})


def status_of(message: OutboxMessage) -> str:
    db.session.expire_all()
    return db.session.get(OutboxMessage, message.id).status


def retried_events() -> list[AuditEvent]:
    return list(db.session.scalars(db.select(AuditEvent).filter_by(kind="outbox.retried")))


def test_support_sees_every_message_without_links_or_codes(messages, http):
    console_sign_in(http, make_staff("support"))
    body = outbox_page(http)
    assert "4 messages" in body
    assert "pat@example.org" in body and "ruth@example.org" in body
    assert "+12035550163" in body
    assert "Password reset link" in body and "Reset your password for Lakeside MLS" in body
    assert "Email confirmation code" in body and "Verification code" in body
    assert "SMTP 550: mailbox unavailable" in body
    assert messages["token"] not in body
    assert CODE not in body


def test_filter_by_status(messages, http):
    console_sign_in(http, make_staff("support"))
    body = outbox_page(http, status="failed")
    assert "1 message" in body and "SMTP 550" in body and "Password reset link" not in body
    assert "3 messages" in outbox_page(http, status="queued")
    assert "1 message" in outbox_page(http, channel="sms")
    assert "4 messages" in outbox_page(http, status="nonsense", page="x")


def test_retry_sends_a_failed_message_again(messages, http):
    staff = make_staff("support")
    console_sign_in(http, staff)
    failed = messages["failed"]
    response = retry(http, failed.id, status="failed")
    assert response.status_code == 303
    assert "status=failed" in response.location
    assert "queued to be sent again" in http.get(response.location).get_data(as_text=True)
    assert status_of(failed) == QUEUED
    [event] = retried_events()
    assert event.actor == f"admin:{staff.email}" and event.subject == "pat@example.org"
    assert event.details["message_id"] == failed.id
    deliver_due(limit=100)  # the development mail backend accepts it this time
    assert status_of(failed) == SENT


def test_only_a_failed_or_waiting_message_is_retried(messages, http):
    console_sign_in(http, make_staff("admin"))
    reset = messages["reset"]
    assert retry(http, reset.id).status_code == 409
    assert retry(http, 999999).status_code == 404
    assert status_of(reset) == QUEUED and retried_events() == []


@pytest.mark.parametrize("token", [None, "wrong"])
def test_retry_needs_the_csrf_token(messages, http, token):
    console_sign_in(http, make_staff("admin"))
    http.get("/admin/outbox")
    data = {} if token is None else {"csrf_token": token}
    response = http.post(f"/admin/outbox/{messages['failed'].id}/retry", data=data)
    assert response.status_code == 400
    assert status_of(messages["failed"]) == FAILED and retried_events() == []


def test_a_portal_admin_sees_only_messages_to_its_people(messages, http):
    console_sign_in(http, make_staff("portal_admin", "lakeside"))
    body = outbox_page(http)
    assert "pat@example.org" in body
    assert "ruth@example.org" not in body and "+12035550163" not in body
    assert "2 messages" in body
    code_mail = messages["code_mail"]
    code_mail.status, code_mail.attempts = FAILED, 5
    db.session.commit()
    assert retry(http, code_mail.id).status_code == 404
    assert status_of(code_mail) == FAILED
    assert retry(http, messages["failed"].id).status_code == 303


def test_the_outbox_needs_a_role(messages, http):
    response = http.get("/admin/outbox")
    assert response.status_code == 303 and "/admin/sign-in" in response.location
