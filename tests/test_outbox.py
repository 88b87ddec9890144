"""The outbox delivers over real SMTP, survives a server that is down, and never sends twice."""

from __future__ import annotations

import pytest

from idp.db import db
from idp.models.outbox import FAILED, QUEUED, SENDING, SENT, OutboxMessage
from idp.notify.outbox import queue_email
from idp.notify.worker import claim_due_messages, deliver_due, retry_message
from tests.smtp_server import SmtpServer, smtp_settings


@pytest.fixture
def settings_overrides(smtp_server):
    return smtp_settings(smtp_server, max_attempts=3)


def queue_reset(to: str = "person@example.org") -> OutboxMessage:
    message = queue_email(to, "reset_password", name="Pat", portal_name="Lakeside MLS",
                          link="https://idp.example/reset/abc", lifetime="1 day")
    db.session.commit()
    return message


def test_queued_email_is_delivered_over_smtp_with_text_and_html(app, smtp_server):
    message = queue_reset()
    assert deliver_due() == 1
    [received] = smtp_server.messages
    assert received["To"] == "person@example.org"
    assert received["From"] == "Portal IdP <no-reply@idp.example>"
    assert received["Subject"] == "Reset your password for Lakeside MLS"
    assert "https://idp.example/reset/abc" in smtp_server.text_of(received)
    assert received.get_body(preferencelist=("html",)) is not None
    assert db.session.get(OutboxMessage, message.id).status == SENT


def test_a_sent_message_is_not_sent_again(app, smtp_server):
    queue_reset()
    deliver_due()
    assert deliver_due() == 0
    assert len(smtp_server.messages) == 1


def test_smtp_server_down_keeps_the_message_queued_and_retries_when_it_returns(
    app, smtp_server, clock
):
    smtp_server.stop()
    message = queue_reset()
    assert deliver_due() == 0
    waiting = db.session.get(OutboxMessage, message.id)
    assert waiting.status == QUEUED and waiting.attempts == 1 and waiting.last_error
    assert deliver_due() == 0  # not due again until the backoff has passed

    smtp_server.start()
    clock.advance(31)
    assert deliver_due() == 1
    assert db.session.get(OutboxMessage, message.id).status == SENT
    assert len(smtp_server.messages) == 1


def test_message_fails_after_max_attempts_and_an_admin_can_retry_it(app, smtp_server, clock):
    smtp_server.stop()
    message = queue_reset()
    for _ in range(3):
        deliver_due()
        clock.advance(3600)
    failed = db.session.get(OutboxMessage, message.id)
    assert failed.status == FAILED and failed.attempts == 3

    smtp_server.start()
    assert deliver_due() == 0  # failed messages wait for a person
    retry_message(failed)
    assert deliver_due() == 1
    assert len(smtp_server.messages) == 1


def test_a_claimed_message_is_not_claimed_twice(app):
    queue_reset()
    assert len(claim_due_messages()) == 1
    assert claim_due_messages() == []


def test_a_worker_that_died_mid_send_leaves_a_claim_that_expires(app, smtp_server, clock):
    message = queue_reset()
    claim_due_messages()  # a worker claims it, then dies
    assert db.session.get(OutboxMessage, message.id).status == SENDING
    assert deliver_due() == 0
    clock.advance(6 * 60)
    assert deliver_due() == 1
    assert len(smtp_server.messages) == 1


def test_credentials_are_not_sent_to_a_server_without_tls(app, smtp_server):
    from idp.config import MailSettings
    from idp.notify.senders import DeliveryError, SmtpSender

    settings = MailSettings(backend="smtp", smtp_host="127.0.0.1", smtp_port=smtp_server.port,
                            smtp_username="idp", smtp_password="secret")
    message = queue_reset()
    with pytest.raises(DeliveryError, match="no TLS"):
        SmtpSender(settings).send(message)
    assert smtp_server.messages == []


def test_restart_loses_nothing(app, smtp_server, tmp_path):
    """Messages live in the database: a new app over the same database sends them."""
    smtp_server.stop()
    queue_reset("one@example.org")
    queue_reset("two@example.org")
    db.session.remove()
    restarted = SmtpServer(port=smtp_server.port).start()
    try:
        assert deliver_due() == 2
        assert sorted(m["To"] for m in restarted.messages) == ["one@example.org",
                                                               "two@example.org"]
    finally:
        restarted.stop()
