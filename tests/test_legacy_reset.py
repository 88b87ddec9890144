""""Password not working?" and invitations for legacy accounts, over real SMTP.

A legacy username or the email on file starts the same reset as any account: the link goes
to the email on file, and using it migrates the account(s) without the old password.
"""

from __future__ import annotations

import re

import pytest

from idp.db import db
from idp.invitations import bulk_invite
from idp.legacy.accounts import legacy_status
from idp.models import User
from idp.notify.worker import deliver_due
from idp.portals import create_portal, update_portal
from tests.driver import follow_to_client, open_login_page, submit_form
from tests.factories import make_client, make_user
from tests.html_forms import parse_labels, parse_links
from tests.legacy import LEGACY_PASSWORD, account, import_rows, legacy_row
from tests.smtp_server import smtp_settings
from tests.test_migrate_legacy import NEW_PASSWORD, claims_of, migration_from, sign_in_with, text_of
from tests.test_reset import choose_password, emailed_link, emails_to


@pytest.fixture
def settings_overrides(smtp_server):
    return smtp_settings(smtp_server)


@pytest.fixture
def portal(app):
    portal = create_portal("lakeside", "Lakeside MLS")
    import_rows(portal,
                legacy_row("JSmith", "pat@example.org", name="Pat Smith", contact_id="C-1"),
                legacy_row("mjones", "", name="Morgan Jones"),
                legacy_row("invite-me", "invitee@example.org", password=None))
    return portal


@pytest.fixture
def rp(portal):
    return make_client(portal_slug=portal.slug)


def reset_from_sign_in(http, rp, typed: str):
    """Password not working? from the portal's sign-in page, for `typed`; the answer."""
    page = open_login_page(http, rp.client.client_id)
    reset_page = http.get(parse_links(text_of(page))["Password not working?"])
    assert "Email or username" in parse_labels(text_of(reset_page))
    return submit_form(http, reset_page, email=typed)


def test_a_legacy_username_gets_a_reset_link_at_its_email_on_file_and_migrates(
    app, smtp_server, portal, rp
):
    migration_from(portal, 7)
    before = app.test_client()
    sub_before = claims_of(before, rp, sign_in_with(before, rp, "jsmith", LEGACY_PASSWORD))["sub"]

    http = app.test_client()
    sent = reset_from_sign_in(http, rp, "JSmith")
    assert "Check your email" in text_of(sent)
    [message] = emails_to(smtp_server, "pat@example.org")
    assert message["Subject"] == "Reset your password for Lakeside MLS"
    link = emailed_link(smtp_server, "pat@example.org")
    page = http.get(link.removeprefix("http://127.0.0.1:5000"))
    assert "Your username is your email address" in text_of(page)
    assert "pat@example.org" in text_of(page)
    response = follow_to_client(http, choose_password(http, link, NEW_PASSWORD))

    claims = claims_of(http, rp, response)
    assert claims["sub"] == sub_before
    assert (claims["email"], claims["email_verified"]) == ("pat@example.org", True)
    assert claims["legacy_usernames"] == ["JSmith"] and claims["contact_id"] == "C-1"
    stored = account(portal, "jsmith")
    assert stored.outcome == "migrated" and stored.password_hash is None  # nothing to keep
    fresh = app.test_client()
    assert sign_in_with(fresh, rp, "pat@example.org", NEW_PASSWORD).status_code in (302, 303)
    assert "You now sign in with your email" in text_of(
        sign_in_with(app.test_client(), rp, "jsmith", NEW_PASSWORD))


def test_the_email_on_file_links_every_pending_account_that_has_it(
    app, smtp_server, portal, rp
):
    import_rows(portal, legacy_row("pat2", "pat@example.org", contact_id="C-2"))
    http = app.test_client()
    reset_from_sign_in(http, rp, "Pat@Example.org")
    response = follow_to_client(http, choose_password(
        http, emailed_link(smtp_server, "pat@example.org")))
    claims = claims_of(http, rp, response)
    assert claims["legacy_usernames"] == ["JSmith", "pat2"]
    assert {account(portal, "jsmith").outcome, account(portal, "pat2").outcome} == \
        {"migrated", "linked"}
    assert account(portal, "pat2").user_id == account(portal, "jsmith").user_id
    status = legacy_status(portal)
    assert (status.total, status.migrated, status.linked, status.pending,
            status.without_password, status.retired) == (4, 2, 1, 2, 1, 0)
    update_portal(portal.slug, {"legacy_usernames_retired": "true"})
    status = legacy_status(portal)
    assert (status.pending, status.retired, status.usernames_retired) == (0, 2, True)


def test_an_email_on_file_that_has_an_account_resets_it_and_links(app, smtp_server, portal, rp):
    existing = make_user("pat@example.org")
    http = app.test_client()
    reset_from_sign_in(http, rp, "jsmith")
    response = follow_to_client(http, choose_password(
        http, emailed_link(smtp_server, "pat@example.org")))
    assert claims_of(http, rp, response)["sub"] == existing.sub
    assert account(portal, "jsmith").user_id == existing.id


def test_every_answer_is_the_same_page_and_only_a_known_email_gets_mail(
    app, smtp_server, portal, rp
):
    answers = {}
    for typed in ("jsmith", "mjones", "no-such-user", "nobody@example.org"):
        response = reset_from_sign_in(app.test_client(), rp, typed)
        body = re.sub(r"tx=[A-Za-z0-9_-]+", "tx=TX", text_of(response).replace(typed, "TYPED"))
        answers[typed] = (response.status_code, body)
    assert len(set(answers.values())) == 1
    deliver_due()
    # mjones has no email on file: nowhere to send a link (the old password still works).
    assert [m["To"] for m in smtp_server.messages] == ["pat@example.org"]


def test_a_migrated_username_gets_the_reset_of_its_account(app, smtp_server, portal, rp):
    http = app.test_client()
    reset_from_sign_in(http, rp, "jsmith")
    follow_to_client(http, choose_password(http, emailed_link(smtp_server, "pat@example.org"),
                                           NEW_PASSWORD))
    reset_from_sign_in(app.test_client(), rp, "jsmith")
    assert len(emails_to(smtp_server, "pat@example.org")) == 2


def test_retired_usernames_start_no_reset(app, smtp_server, portal, rp):
    update_portal(portal.slug, {"legacy_usernames_retired": "yes"})
    page = open_login_page(app.test_client(), rp.client.client_id)
    assert "Email or username" not in parse_labels(text_of(page))
    http = app.test_client()
    page = open_login_page(http, rp.client.client_id)
    reset_page = http.get(parse_links(text_of(page))["Password not working?"])
    submit_form(http, reset_page, email="jsmith")
    assert deliver_due() == 0


@pytest.mark.parametrize("has_password", [False, True])
def test_an_accepted_invitation_links_the_pending_accounts_with_that_email(
    app, smtp_server, portal, rp, has_password
):
    email = "invitee@example.org" if not has_password else "pat@example.org"
    result = bulk_invite(portal, [{"email": email, "name": "Invitee"}])
    assert result.totals["sent"] == 1
    http = app.test_client()
    response = follow_to_client(http, choose_password(http, emailed_link(smtp_server, email)))
    assert response.status_code in (200, 303)
    user = db.session.execute(db.select(User).filter_by(email=email)).scalar_one()
    username = "pat" if has_password else "invite-me"
    stored = account(portal, "jsmith" if has_password else "invite-me")
    assert stored.user_id == user.id and stored.migrated_at is not None, username
