"""Support resets a person's MFA (lost phone): reason required, the person is emailed and
enrols again at the next sign-in; `idp users reset-mfa` from the command line."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest

from idp.mfa.methods import MfaError, has_mfa, remove_method
from idp.mfa.recovery import generate_recovery_codes, remaining_recovery_codes
from idp.mfa.reset import reset_mfa
from idp.portals import create_portal, update_portal
from tests.driver import follow_to_client, open_login_page, shows_step, submit_form
from tests.factories import PASSWORD, make_client, make_mfa_method, make_user
from tests.smtp_server import smtp_settings
from tests.test_cli import assert_ok, assert_one_line_error, idp, query


@pytest.fixture
def settings_overrides(smtp_server):
    return smtp_settings(smtp_server)


@pytest.fixture
def user(app):
    person = make_user("lost.phone@example.org")
    make_mfa_method(person, "totp")
    make_mfa_method(person, "sms", "+12035550163")
    generate_recovery_codes(person)
    return person


def test_reset_removes_every_method_and_emails_the_person(app, smtp_server, caplog, user):
    from idp.notify.worker import deliver_due

    with caplog.at_level(logging.INFO, logger="idp.mfa"):
        reset_mfa(user, "Lost phone; ticket 4711", actor="support@lakeside")
    assert not has_mfa(user) and remaining_recovery_codes(user) == 0
    deliver_due()
    [message] = smtp_server.messages
    assert message["To"] == "lost.phone@example.org"
    assert message["Subject"] == "Your two-step verification was reset"
    assert "Lost phone" not in smtp_server.text_of(message)  # the reason is for the log
    [record] = [r for r in caplog.records if r.name == "idp.mfa"]
    assert "Lost phone; ticket 4711" in record.getMessage()
    assert "support@lakeside" in record.getMessage() and user.sub in record.getMessage()


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_reason_is_required(app, user, reason):
    with pytest.raises(MfaError, match="reason"):
        reset_mfa(user, reason)
    assert has_mfa(user)


def test_after_a_reset_the_next_sign_in_enrols_again(app, smtp_server, user):
    portal = create_portal("mls", "Lakeside MLS")
    update_portal(portal.slug, {"mfa_required_from": str(date.today() - timedelta(days=1))})
    rp = make_client(portal_slug=portal.slug)
    reset_mfa(user, "lost phone")
    http = app.test_client()
    page = open_login_page(http, rp.client.client_id)
    page = follow_to_client(http, submit_form(http, page, email=user.email, password=PASSWORD))
    assert shows_step(page, "mfa_enroll") and "Skip for now" not in page.get_data(as_text=True)


# -- removing a method -------------------------------------------------------------------------


def test_the_last_method_cannot_be_removed_while_mfa_is_required(app):
    person = make_user()
    method, _ = make_mfa_method(person, "totp")
    with pytest.raises(MfaError, match="last verification method"):
        remove_method(person, method, mfa_required=True)
    other = make_mfa_method(person, "email")
    remove_method(person, method, mfa_required=True)
    remove_method(person, other, mfa_required=False)
    assert not has_mfa(person)


def test_someone_elses_method_cannot_be_removed(app):
    method, _ = make_mfa_method(make_user(), "totp")
    with pytest.raises(MfaError):
        remove_method(make_user(), method, mfa_required=False)


# -- idp users reset-mfa -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    instance = tmp_path_factory.mktemp("mfa-cli") / "instance"
    assert_ok(idp(instance, "init"))
    assert_ok(idp(instance, "users", "create", "--email", "pat@example.org", "--password",
                  PASSWORD))
    with contextlib.closing(sqlite3.connect(instance / "idp.sqlite3")) as database:
        database.execute(
            "INSERT INTO mfa_methods (user_id, kind, destination, data, failed_attempts, "
            "created_at, confirmed_at) SELECT id, 'email', email, '{}', 0, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM users WHERE email = 'pat@example.org'")
        database.commit()
    return instance


def count_methods(instance: Path) -> int:
    return int(query(instance, "SELECT count(*) FROM mfa_methods")[0][0])


def test_cli_reset_mfa_removes_the_methods_and_queues_the_email(tmp_path, cli_template):
    import shutil

    instance = tmp_path / "instance"
    shutil.copytree(cli_template, instance)
    assert count_methods(instance) == 1
    result = idp(instance, "users", "reset-mfa", "--email", "Pat@Example.org",
                 "--reason", "lost phone, ticket 4711")
    assert result.returncode == 0, result.stderr
    assert "pat@example.org" in result.stdout
    assert count_methods(instance) == 0
    assert query(instance, "SELECT kind FROM outbox_messages") == [("mfa_reset",)]


@pytest.mark.parametrize("args, fragment", [
    (["--email", "nobody@example.org", "--reason", "x"], "no person with email"),
    (["--email", "pat@example.org", "--reason", "  "], "reason"),
    (["--email", "pat@example.org"], "--reason"),
])
def test_cli_reset_mfa_refuses_bad_input_in_one_line(cli_template, args, fragment):
    assert_one_line_error(idp(cli_template, "users", "reset-mfa", *args), fragment)
    assert count_methods(cli_template) == 1


def test_a_reset_ends_the_persons_sessions_and_trusted_browsers(app, user):
    from idp.clock import utcnow
    from idp.db import db
    from idp.models import IdpSession, TrustedDevice

    now = utcnow()
    session = IdpSession(user_id=user.id, auth_time=now, expires_at=now + timedelta(hours=1),
                         amr=["pwd", "otp", "mfa"])
    trust = TrustedDevice(user_id=user.id, device_hash="a" * 64,
                          expires_at=now + timedelta(days=30))
    db.session.add_all([session, trust])
    db.session.commit()
    reset_mfa(user, "lost phone, ticket 4712")
    db.session.refresh(session)
    db.session.refresh(trust)
    assert session.ended_at is not None and not session.is_current()
    assert trust.revoked_at is not None
