"""The audit log records events with request context and cannot be altered by the app."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from idp import audit
from idp.db import db
from idp.models import AuditEvent


def test_an_event_records_who_what_and_from_where(app):
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "203.0.113.7"},
                                  headers={"User-Agent": "TestBrowser/1.0"}):
        audit.record("signin.failure", actor="anonymous", subject="pat@example.org",
                     portal="lakeside", reason="wrong_password")
    [event] = db.session.scalars(db.select(AuditEvent)).all()
    assert (event.kind, event.subject, event.ip, event.user_agent) == (
        "signin.failure", "pat@example.org", "203.0.113.7", "TestBrowser/1.0")
    assert event.details == {"reason": "wrong_password"}


@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET kind = 'tampered'",
    "DELETE FROM audit_events",
])
def test_the_database_refuses_to_change_or_delete_audit_events(app, statement):
    audit.record("client.created", actor="cli", subject="demo-portal")
    with pytest.raises(DatabaseError, match="append-only"):
        db.session.execute(text(statement))
        db.session.flush()
    db.session.rollback()
    assert db.session.scalars(db.select(AuditEvent.kind)).all() == ["client.created"]


def test_sign_ins_password_changes_and_revocations_are_audited(app, http):
    from tests.driver import exchange_code, open_login_page, sign_in, submit_form
    from tests.factories import make_client, make_user

    user = make_user()
    rp = make_client()
    submit_form(http, open_login_page(http, rp.client.client_id), email=user.email,
                password="not the password")
    code = sign_in(http, rp.client.client_id, user.email).code
    tokens = exchange_code(http, code, rp.client.client_id, rp.client_secret).json
    http.post("/revoke", data={"token": tokens["refresh_token"]},
              auth=(rp.client.client_id, rp.client_secret))
    kinds = db.session.scalars(db.select(AuditEvent.kind).order_by(AuditEvent.id)).all()
    assert kinds[0] == "client.created"
    assert {"signin.failure", "signin.password", "token.revoked"} <= set(kinds)
    failure = db.session.scalars(db.select(AuditEvent).filter_by(kind="signin.failure")).one()
    assert failure.subject == user.email and failure.ip == "127.0.0.1"
    assert "not the password" not in str(failure.details)
