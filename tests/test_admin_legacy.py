"""The legacy accounts view of the admin console (issue 4): counts, export, reminders, retire."""

from __future__ import annotations

import csv
import io

import pytest

from idp.db import db
from idp.legacy.accounts import export_pending, legacy_status, link_account
from idp.models import AuditEvent, Invitation, OutboxMessage, Portal
from idp.models.legacy import LINKED, MIGRATED
from idp.portals import create_portal
from tests.admin_fixtures import console_form, console_sign_in, make_staff
from tests.driver import open_login_page
from tests.factories import make_client, make_user
from tests.legacy import account, import_rows, legacy_row


@pytest.fixture
def lakeside(app) -> Portal:
    """Six legacy accounts: two moved (one joined an existing account), three pending (one
    without a password, one without an email on file), one retired."""
    portal = create_portal("lakeside", "Lakeside MLS")
    import_rows(
        portal,
        legacy_row("agent_ann", "ann@example.org", name="Ann Lee", contact_id="L-1"),
        legacy_row("agent_bob", "bob@example.org", password=None, name="Bob Roy"),
        legacy_row("agent_cy", None, name="Cy Nobody"),
        legacy_row("agent_dee", "dee@example.org"),
        legacy_row("agent_eve", "eve@example.org"),
        legacy_row("agent_old", "old@example.org"),
    )
    for username, outcome in (("agent_dee", MIGRATED), ("agent_eve", LINKED)):
        person = make_user(username.replace("agent_", "") + "@example.org")
        link_account(account(portal, username), person, outcome)
        db.session.commit()
    from idp.legacy.accounts import retire_accounts

    retire_accounts(portal, ["agent_old"])
    db.session.commit()
    other = create_portal("grace", "Grace Church")
    import_rows(other, legacy_row("deacon_sam", "sam@example.org"))
    return portal


def page(http, path: str) -> str:
    response = http.get(path)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def events(kind: str) -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(db.select(AuditEvent).filter_by(kind=kind)))


def invite(http, slug: str = "lakeside", **data: str):
    token = console_form(http, f"/admin/legacy/{slug}")
    return http.post(f"/admin/legacy/{slug}/invite", data={**token, **data})


def retire(http, value: str, slug: str = "lakeside"):
    token = console_form(http, f"/admin/legacy/{slug}")
    return http.post(f"/admin/legacy/{slug}/retire", data={**token, "retired": value})


def test_the_counts_are_those_of_the_command_line(lakeside, http):
    status = legacy_status(lakeside)
    assert (status.total, status.migrated, status.linked, status.pending, status.retired,
            status.without_password) == (6, 2, 1, 3, 1, 1)
    console_sign_in(http, make_staff("support"))
    listing = page(http, "/admin/legacy")
    assert "Lakeside MLS" in listing and "Grace Church" in listing
    row = listing.split("Lakeside MLS</a></th>")[1].split("</tr>")[0]
    assert [cell.split("</td>")[0] for cell in row.split("<td>")[1:6]] == \
        ["6", "2", "1", "3", "1"]
    body = page(http, "/admin/legacy/lakeside")
    assert "2 (of which 1 joined an account" in body
    assert "3 (of which 1 without a password" in body


def test_the_pending_list_downloads_as_the_cli_writes_it(lakeside, http):
    staff = make_staff("support")
    console_sign_in(http, staff)
    response = http.get("/admin/legacy/lakeside/pending.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith(
        'attachment; filename="legacy-pending-lakeside-')
    expected = io.StringIO()
    assert export_pending(lakeside, expected) == 3
    assert response.get_data(as_text=True) == expected.getvalue()
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["legacy_username"] for r in rows] == ["agent_ann", "agent_bob", "agent_cy"]
    assert rows[0]["email"] == "ann@example.org" and rows[1]["has_password"] == "no"
    [event] = events("legacy.pending_exported")
    assert event.actor == f"admin:{staff.email}" and event.details["rows"] == 3
    assert event.portal == "lakeside"


def test_the_reminder_invites_the_pending_people_with_an_email(lakeside, http):
    staff = make_staff("portal_admin", "lakeside")
    console_sign_in(http, staff)
    assert "Send invitations to 3 pending people" in page(http, "/admin/legacy/lakeside")
    response = invite(http)
    assert response.status_code == 303
    assert "2 sent, 1 skipped" in http.get(response.location).get_data(as_text=True)
    invited = db.session.scalars(db.select(Invitation.email).order_by(Invitation.email)).all()
    assert invited == ["ann@example.org", "bob@example.org"]
    assert db.session.scalars(db.select(OutboxMessage.kind)).all() == ["invitation"] * 2
    [event] = events("legacy.invitations_sent")
    assert event.actor == f"admin:{staff.email}"
    assert (event.details["sent"], event.details["skipped"]) == (2, 1)
    # Again: the links still work, so nobody gets a second email.
    invite(http)
    assert len(db.session.scalars(db.select(OutboxMessage)).all()) == 2


def test_the_reminder_may_carry_its_own_message(lakeside, http):
    console_sign_in(http, make_staff("admin"))
    response = invite(http, template="Hello {{ name }} ({{ legacy_username }}): {{ login_link }}")
    assert response.status_code == 303
    bodies = db.session.scalars(db.select(OutboxMessage.body_text)).all()
    assert any("Hello Ann Lee (agent_ann):" in body for body in bodies)
    response = invite(http, template="No link here")
    assert response.status_code == 400
    assert "login_link" in response.get_data(as_text=True)


def test_retiring_the_usernames_changes_the_sign_in_page(lakeside, http, app):
    portal_app = make_client(portal_slug="lakeside")
    visitor = app.test_client()
    assert "Email or username" in open_login_page(
        visitor, portal_app.client.client_id).get_data(as_text=True)
    staff = make_staff("admin")
    console_sign_in(http, staff)
    assert "Retire the legacy usernames" in page(http, "/admin/legacy/lakeside")
    response = retire(http, "yes")
    assert response.status_code == 303
    assert "only emails sign in" in http.get(response.location).get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Portal, lakeside.id).policy.legacy_usernames_retired
    assert "Email or username" not in open_login_page(
        app.test_client(), portal_app.client.client_id).get_data(as_text=True)
    [event] = events("legacy.usernames_retired")
    assert event.actor == f"admin:{staff.email}" and event.details["pending_when_retired"] == 3
    assert retire(http, "no").status_code == 303
    assert len(events("legacy.usernames_restored")) == 1
    assert retire(http, "maybe").status_code == 400


def test_support_reads_but_does_not_mail_or_retire(lakeside, http):
    console_sign_in(http, make_staff("support"))
    body = page(http, "/admin/legacy/lakeside")
    assert "Send invitations" not in body and "Retire the legacy usernames of" not in body
    assert invite(http).status_code == 403
    assert retire(http, "yes").status_code == 403
    assert db.session.scalars(db.select(Invitation)).all() == []
    assert not db.session.get(Portal, lakeside.id).policy.legacy_usernames_retired


def test_a_portal_admin_sees_only_its_portal(lakeside, http):
    console_sign_in(http, make_staff("portal_admin", "grace"))
    listing = page(http, "/admin/legacy")
    assert "Grace Church" in listing and "Lakeside MLS" not in listing
    assert http.get("/admin/legacy/lakeside").status_code == 404
    assert http.get("/admin/legacy/lakeside/pending.csv").status_code == 404
    token = console_form(http, "/admin/legacy/grace")
    assert http.post("/admin/legacy/lakeside/invite", data=token).status_code == 404
    assert http.post("/admin/legacy/lakeside/retire",
                     data={**token, "retired": "yes"}).status_code == 404
    assert http.get("/admin/legacy/idp-admin").status_code == 404
    assert events("legacy.pending_exported") == []


@pytest.mark.parametrize("token", [None, "wrong"])
@pytest.mark.parametrize("action", ["invite", "retire"])
def test_the_forms_need_the_csrf_token(lakeside, http, action, token):
    console_sign_in(http, make_staff("admin"))
    http.get("/admin/legacy/lakeside")
    data = {"retired": "yes"} if token is None else {"retired": "yes", "csrf_token": token}
    response = http.post(f"/admin/legacy/lakeside/{action}", data=data)
    assert response.status_code == 400
    assert db.session.scalars(db.select(Invitation)).all() == []
    db.session.expire_all()
    assert not db.session.get(Portal, lakeside.id).policy.legacy_usernames_retired
    assert events("legacy.invitations_sent") == events("legacy.usernames_retired") == []
