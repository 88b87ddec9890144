"""Admin API, outbox: messages by status and channel, never their contents; retry."""

from __future__ import annotations

import pytest

from idp.contacts import link_contact
from idp.db import db
from idp.models import AuditEvent, Contact, OutboxMessage
from idp.models.outbox import FAILED, QUEUED, SENT
from idp.portals import create_portal
from tests.admin_fixtures import api_headers, api_token, assert_documented
from tests.factories import make_user

API = "/admin/api/v1"
CODE = "493817"
LINK = "https://idp.example/password/tok3n-that-must-stay-secret"


@pytest.fixture
def admin(http):
    return api_headers(api_token(http))


def message(recipient: str, status: str = SENT, channel: str = "email", attempts: int = 1,
            kind: str = "verify_email", error: str | None = None) -> OutboxMessage:
    row = OutboxMessage(channel=channel, kind=kind, recipient=recipient,
                        subject=f"Your code: {CODE}", body_text=f"Code {CODE}, or {LINK}",
                        body_html=f"<p>{CODE} <a href='{LINK}'>link</a></p>", status=status,
                        attempts=attempts, last_error=error)
    db.session.add(row)
    db.session.commit()
    return row


def test_messages_are_listed_newest_first_without_subject_or_body(http, admin):
    message("a@example.com")
    failed = message("b@example.com", FAILED, attempts=5, error="550 mailbox unavailable")
    message("+12035550163", channel="sms", kind="mfa_code")
    response = http.get(f"{API}/outbox", headers=admin)
    assert response.status_code == 200
    assert_documented(http, response, "GET", "/outbox")
    assert [m["recipient"] for m in response.json["items"]] == [
        "+12035550163", "b@example.com", "a@example.com"]
    text = response.get_data(as_text=True)
    assert CODE not in text and "tok3n" not in text
    only_failed = http.get(f"{API}/outbox?status=failed", headers=admin).json["items"]
    assert [(m["id"], m["last_error"], m["attempts"]) for m in only_failed] == [
        (failed.id, "550 mailbox unavailable", 5)]
    sms = http.get(f"{API}/outbox?channel=sms", headers=admin).json["items"]
    assert [m["kind"] for m in sms] == ["mfa_code"]
    bad = http.get(f"{API}/outbox?status=lost", headers=admin)
    assert bad.status_code == 422 and bad.json["errors"][0]["field"] == "status"
    assert_documented(http, bad, "GET", "/outbox")


def test_the_list_pages_with_next_and_a_link_header(http, admin):
    for n in range(3):
        message(f"p{n}@example.com")
    first = http.get(f"{API}/outbox?per_page=2", headers=admin)
    assert first.json["total"] == 3
    assert first.headers["Link"] == f'<{first.json["next"]}>; rel="next"'
    second = http.get(first.json["next"], headers=admin).json
    assert [m["recipient"] for m in second["items"]] == ["p0@example.com"]
    assert second["next"] is None


def test_retry_queues_a_failed_message_at_once_and_is_audited(http, admin):
    failed = message("b@example.com", FAILED, attempts=5)
    response = http.post(f"{API}/outbox/{failed.id}/retry", headers=admin)
    assert response.status_code == 200
    assert_documented(http, response, "POST", "/outbox/{message_id}/retry")
    assert response.json["status"] == QUEUED
    assert CODE not in response.get_data(as_text=True)
    db.session.refresh(failed)
    assert failed.status == QUEUED
    event = db.session.execute(db.select(AuditEvent).filter_by(kind="outbox.retried")
                               ).scalar_one()
    assert event.actor.startswith("client:") and event.details["message_id"] == failed.id


@pytest.mark.parametrize(("status", "attempts"), [(SENT, 1), (QUEUED, 0)])
def test_a_message_sent_or_not_yet_tried_cannot_be_retried(http, admin, status, attempts):
    row = message("a@example.com", status, attempts=attempts)
    response = http.post(f"{API}/outbox/{row.id}/retry", headers=admin)
    assert response.status_code == 409
    assert_documented(http, response, "POST", "/outbox/{message_id}/retry")


@pytest.mark.parametrize("message_id", ["12345", "x", "0"])
def test_retry_of_an_unknown_message_is_404(http, admin, message_id):
    response = http.post(f"{API}/outbox/{message_id}/retry", headers=admin)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_a_portal_client_sees_only_messages_to_its_people(http, app):
    lakeside = create_portal("lakeside", "Lakeside MLS")
    create_portal("members", "Members Only")
    person = make_user("jordan.smith@example.com")
    contact = Contact(portal_id=lakeside.id, external_id="L-42", email=person.email)
    db.session.add(contact)
    link_contact(contact, person)
    db.session.commit()
    own = message(person.email, FAILED, attempts=5)
    other = message("morgan.lee@example.com", FAILED, attempts=5)
    headers = api_headers(api_token(http, "lakeside"))
    listed = http.get(f"{API}/outbox", headers=headers).json["items"]
    assert [m["id"] for m in listed] == [own.id]
    assert http.post(f"{API}/outbox/{other.id}/retry", headers=headers).status_code == 404
    assert http.post(f"{API}/outbox/{own.id}/retry", headers=headers).status_code == 200
    db.session.refresh(other)
    assert other.status == FAILED


def test_without_a_token_the_outbox_is_closed(http, app):
    row = message("b@example.com", FAILED, attempts=5)
    assert http.get(f"{API}/outbox").status_code == 401
    response = http.post(f"{API}/outbox/{row.id}/retry")
    assert response.status_code == 401
    assert_documented(http, response, "POST", "/outbox/{message_id}/retry")
    db.session.refresh(row)
    assert row.status == FAILED
