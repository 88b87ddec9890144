"""Invitations (staff side): one person or a CSV, each email with its own link, over real SMTP.

Every email leaves through the outbox worker (`deliver_due`) to an aiosmtpd server on
127.0.0.1; links are taken from the emails and followed with the Flask test client.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from idp.clock import utcnow
from idp.db import db
from idp.invitations import (
    InvitationError,
    bulk_invite,
    list_invitations,
    read_invitation_csv,
    resend_invitation,
    send_invitation,
)
from idp.models import Contact, Invitation, User
from idp.notify.worker import deliver_due
from idp.policy import DEFAULT_INVITATION_MESSAGE
from idp.portals import create_portal, update_portal
from idp.users import create_user
from tests.conftest import ISSUER
from tests.driver import (
    answered_with_code,
    authorize,
    follow_to_client,
    open_login_page,
    query_of,
    submit_form,
)
from tests.factories import PASSWORD, make_client, make_user
from tests.smtp_server import smtp_settings
from tests.test_cli import assert_ok, assert_one_line_error, idp, query

NEW_PASSWORD = "lanterns over a quiet harbour"
LINK = re.compile(r"https?://\S+")
TEMPLATE = "Dear {{ name }},\n\nYour member number is {{ contact_id }}.\n" \
           "Join {{ portal_name }} here: {{ login_link }}\n\nThe office"


@pytest.fixture
def settings_overrides(smtp_server):
    return smtp_settings(smtp_server)


@pytest.fixture
def portal(app):
    return create_portal("lakeside", "Lakeside MLS")


@pytest.fixture
def rp(portal):
    return make_client(portal_slug=portal.slug)


# -- actions ------------------------------------------------------------------------------


def text_of(response) -> str:
    return response.get_data(as_text=True)


def emails_to(smtp_server, address: str) -> list:
    deliver_due(limit=1000)
    return [m for m in smtp_server.messages if m["To"] == address]


def html_of(message) -> str:
    return str(message.get_body(preferencelist=("html",)).get_content())


def link_in(smtp_server, message) -> str:
    """The one link of an email, the same in its text and HTML parts."""
    links = LINK.findall(smtp_server.text_of(message))
    assert len(links) == 1, smtp_server.text_of(message)
    assert f'href="{links[0]}"' in html_of(message)
    return links[0]


def emailed_link(smtp_server, address: str) -> str:
    """The link of the newest email to `address`."""
    messages = emails_to(smtp_server, address)
    assert messages, f"no email to {address}"
    return link_in(smtp_server, messages[-1])


def path_of(url: str) -> str:
    return urlsplit(url).path


def accept(http, link: str, password: str = NEW_PASSWORD):
    """Open the emailed link, then choose a password on the page it shows."""
    page = http.get(path_of(link))
    assert page.status_code == 200, text_of(page)
    return submit_form(http, page, password=password)


def is_signed_in(http, client_id: str) -> bool:
    response = follow_to_client(http, authorize(http, client_id, prompt="none"))
    return "code" in query_of(response.location)


def can_sign_in(app, client_id: str, email: str, password: str) -> bool:
    browser = app.test_client()
    page = open_login_page(browser, client_id)
    response = follow_to_client(browser, submit_form(browser, page, email=email,
                                                     password=password))
    return answered_with_code(response)


def status_of(invitation: Invitation) -> str:
    db.session.expire_all()
    return db.session.get(Invitation, invitation.id).status


def csv_rows(*lines: str) -> list[dict[str, str]]:
    return read_invitation_csv("\n".join(lines) + "\n")


# -- one person ---------------------------------------------------------------------------


def test_an_invited_person_sets_a_password_and_is_signed_in_at_the_portal(
    app, http, smtp_server, portal, rp
):
    invitation = send_invitation(portal, "  Sam.Okafor@Example.org ", name="Sam Okafor",
                                 contact_external_id="C-17")
    assert invitation.email == "sam.okafor@example.org"
    assert status_of(invitation) == "sent"

    [message] = emails_to(smtp_server, "sam.okafor@example.org")
    assert message["Subject"] == "You're invited to Lakeside MLS"
    text = smtp_server.text_of(message)
    assert text.startswith("Hello Sam Okafor,")
    assert DEFAULT_INVITATION_MESSAGE in text
    assert "expires in 7 days" in text
    link = link_in(smtp_server, message)
    assert re.match(rf"^{re.escape(ISSUER)}/password/[A-Za-z0-9_-]{{40,}}$", link), link

    page = http.get(path_of(link))
    assert page.status_code == 200
    assert "sam.okafor@example.org" in text_of(page)
    assert status_of(invitation) == "opened"

    response = submit_form(http, page, password=NEW_PASSWORD)
    assert response.status_code == 303
    assert status_of(invitation) == "accepted"
    assert is_signed_in(http, rp.client.client_id)  # prompt=none gives a code

    user = db.session.execute(db.select(User).filter_by(email=invitation.email)).scalar_one()
    assert user.email_verified and user.name == "Sam Okafor"
    accepted = db.session.get(Invitation, invitation.id)
    assert accepted.user_id == user.id and accepted.accepted_at and accepted.opened_at
    contact = db.session.execute(db.select(Contact).filter_by(external_id="C-17")).scalar_one()
    assert (contact.portal_id, contact.user_id, contact.email) == (portal.id, user.id,
                                                                   user.email)
    assert can_sign_in(app, rp.client.client_id, user.email, NEW_PASSWORD)


def test_accepting_lands_at_the_portal_home_page_signed_in(http, smtp_server, portal, rp):
    update_portal(portal.slug, {"home_url": "https://lakeside.example/members"})
    send_invitation(portal, "pat@example.org")
    response = accept(http, emailed_link(smtp_server, "pat@example.org"))
    assert response.status_code == 303
    assert response.location == "https://lakeside.example/members"
    assert is_signed_in(http, rp.client.client_id)


def test_the_message_is_the_portal_default_from_its_policy(smtp_server, portal):
    update_portal(portal.slug, {"invitation_message": "Lakeside members: welcome aboard."})
    send_invitation(portal, "pat@example.org")
    [message] = emails_to(smtp_server, "pat@example.org")
    assert "Lakeside members: welcome aboard." in smtp_server.text_of(message)
    assert DEFAULT_INVITATION_MESSAGE not in smtp_server.text_of(message)


def test_an_overridden_message_replaces_the_default_and_is_escaped_in_html(
    http, smtp_server, portal
):
    message_text = "Hi Pat & family,\n\nYour agent <Jo> set up your portal.\n\nSee you there!"
    invitation = send_invitation(portal, "pat@example.org", name="Pat", message=message_text)
    [message] = emails_to(smtp_server, "pat@example.org")
    text = smtp_server.text_of(message)
    assert "Your agent <Jo> set up your portal." in text
    assert DEFAULT_INVITATION_MESSAGE not in text
    html = html_of(message)
    assert "Your agent &lt;Jo&gt; set up your portal." in html
    assert "Hi Pat &amp; family," in html and "<Jo>" not in html
    assert db.session.get(Invitation, invitation.id).message == message_text
    assert accept(http, link_in(smtp_server, message)).status_code == 303


def test_a_message_can_place_the_link_itself(smtp_server, portal):
    send_invitation(portal, "pat@example.org", message="Start here: {{login_link}} - thanks")
    [message] = emails_to(smtp_server, "pat@example.org")
    link = link_in(smtp_server, message)
    assert f"Start here: {link} - thanks" in smtp_server.text_of(message)
    assert "{{" not in smtp_server.text_of(message)


def test_every_invitation_has_its_own_link(smtp_server, portal):
    send_invitation(portal, "one@example.org")
    send_invitation(portal, "two@example.org")
    assert emailed_link(smtp_server, "one@example.org") != emailed_link(smtp_server,
                                                                        "two@example.org")


@pytest.mark.parametrize("email", [
    None, "", "   ", "not-an-email", "pat@localhost", "pat smith@example.org",
    "<pat@example.org>", "pat@example.org\r\nBcc: everyone@example.org",
    "a,b@example.org", "x" * 320 + "@example.org",
])
def test_a_missing_or_invalid_email_is_refused(smtp_server, portal, email):
    with pytest.raises(InvitationError, match="^email: "):
        send_invitation(portal, email)
    assert db.session.execute(db.select(Invitation)).first() is None
    assert deliver_due() == 0


def test_an_empty_message_is_refused(portal):
    with pytest.raises(InvitationError, match="message: must not be empty"):
        send_invitation(portal, "pat@example.org", message="  \n ")


def test_an_existing_contact_is_linked_on_acceptance(http, smtp_server, portal):
    db.session.add(Contact(portal_id=portal.id, external_id="M-204", name="Ana", email=None))
    db.session.commit()
    send_invitation(portal, "ana@example.org", contact_external_id="M-204")
    accept(http, emailed_link(smtp_server, "ana@example.org"))
    [contact] = db.session.scalars(db.select(Contact)).all()
    user = db.session.execute(db.select(User).filter_by(email="ana@example.org")).scalar_one()
    assert contact.external_id == "M-204" and contact.user_id == user.id


def test_a_person_with_an_account_is_told_to_sign_in_and_the_link_sets_a_new_password(
    app, http, smtp_server, portal, rp
):
    user = make_user("robin@example.org", name="Robin")
    invitation = send_invitation(portal, "Robin@example.org", contact_external_id="R-1")
    [message] = emails_to(smtp_server, user.email)
    assert message["Subject"] == "Lakeside MLS: sign in with your account"
    text = smtp_server.text_of(message)
    assert "Hello Robin," in text
    assert "You already have an account with this email address" in text
    link = link_in(smtp_server, message)
    assert can_sign_in(app, rp.client.client_id, user.email, PASSWORD)  # nothing changed yet

    assert accept(http, link).status_code == 303
    assert status_of(invitation) == "accepted"
    assert can_sign_in(app, rp.client.client_id, user.email, NEW_PASSWORD)
    assert not can_sign_in(app, rp.client.client_id, user.email, PASSWORD)
    contact = db.session.execute(db.select(Contact).filter_by(external_id="R-1")).scalar_one()
    assert contact.user_id == user.id
    assert db.session.scalar(db.select(db.func.count(User.id))) == 1


def test_a_person_with_an_account_but_no_password_gets_the_plain_invitation(smtp_server, portal):
    create_user("lee@example.org", None, "Lee")
    send_invitation(portal, "lee@example.org")
    [message] = emails_to(smtp_server, "lee@example.org")
    assert message["Subject"] == "You're invited to Lakeside MLS"


def test_a_disabled_account_is_refused(smtp_server, portal):
    user = make_user("gone@example.org")
    user.disabled_at = utcnow()
    db.session.commit()
    with pytest.raises(InvitationError, match="disabled"):
        send_invitation(portal, "gone@example.org")
    assert deliver_due() == 0


def test_invitations_of_two_portals_do_not_replace_each_other(http, smtp_server, portal):
    other = create_portal("hillside", "Hillside Church")
    send_invitation(portal, "pat@example.org")
    first = emailed_link(smtp_server, "pat@example.org")
    send_invitation(other, "pat@example.org")
    assert http.get(path_of(first)).status_code == 200


# -- statuses -------------------------------------------------------------------------------


def test_status_goes_sent_opened_accepted_and_staff_can_filter_by_it(http, smtp_server, portal):
    first = send_invitation(portal, "one@example.org")
    second = send_invitation(portal, "two@example.org")
    third = send_invitation(portal, "three@example.org")
    http.get(path_of(emailed_link(smtp_server, "two@example.org")))
    accept(http, emailed_link(smtp_server, "three@example.org"))
    assert [status_of(i) for i in (first, second, third)] == ["sent", "opened", "accepted"]
    assert [i.email for i in list_invitations(portal, "opened")] == ["two@example.org"]
    assert [i.email for i in list_invitations(portal)] == ["one@example.org", "two@example.org",
                                                          "three@example.org"]


def test_an_invitation_expires_after_the_policy_link_days(http, smtp_server, clock, portal):
    update_portal(portal.slug, {"set_password_link_days": "3"})
    invitation = send_invitation(portal, "pat@example.org")
    link = emailed_link(smtp_server, "pat@example.org")
    assert "expires in 3 days" in smtp_server.text_of(emails_to(smtp_server,
                                                                "pat@example.org")[0])
    clock.advance(3 * 86400 - 120)
    assert status_of(invitation) == "sent"
    clock.advance(240)
    assert status_of(invitation) == "expired"
    response = http.get(path_of(link))
    assert response.status_code == 410 and "expired" in text_of(response)


def test_the_default_invitation_link_lasts_seven_days(smtp_server, clock, portal):
    invitation = send_invitation(portal, "pat@example.org")
    clock.advance(7 * 86400 - 60)
    assert status_of(invitation) == "sent"
    clock.advance(120)
    assert status_of(invitation) == "expired"


def test_resend_supersedes_the_old_link_and_shows_resent(http, smtp_server, clock, portal, rp):
    invitation = send_invitation(portal, "pat@example.org")
    old = emailed_link(smtp_server, "pat@example.org")
    http.get(path_of(old))
    assert status_of(invitation) == "opened"

    resend_invitation(db.session.get(Invitation, invitation.id))
    new = emailed_link(smtp_server, "pat@example.org")
    assert new != old
    assert status_of(invitation) == "resent"
    assert db.session.get(Invitation, invitation.id).resent_count == 1
    problem = http.get(path_of(old))
    assert problem.status_code == 410 and "A newer link replaced this one" in text_of(problem)
    assert len(emails_to(smtp_server, "pat@example.org")) == 2

    assert accept(http, new).status_code == 303
    assert status_of(invitation) == "accepted"
    assert is_signed_in(http, rp.client.client_id)


def test_an_expired_invitation_can_be_resent(http, smtp_server, clock, portal):
    invitation = send_invitation(portal, "pat@example.org")
    clock.advance(8 * 86400)
    assert status_of(invitation) == "expired"
    resend_invitation(db.session.get(Invitation, invitation.id))
    assert status_of(invitation) == "resent"
    assert accept(http, emailed_link(smtp_server, "pat@example.org")).status_code == 303


def test_an_accepted_invitation_is_not_resent(http, smtp_server, portal):
    invitation = send_invitation(portal, "pat@example.org")
    accept(http, emailed_link(smtp_server, "pat@example.org"))
    with pytest.raises(InvitationError, match="already accepted"):
        resend_invitation(db.session.get(Invitation, invitation.id))


def test_inviting_again_reuses_the_pending_invitation(http, smtp_server, portal):
    first = send_invitation(portal, "pat@example.org", message="First try.")
    old = emailed_link(smtp_server, "pat@example.org")
    second = send_invitation(portal, "pat@example.org", message="Second try.")
    assert second.id == first.id and status_of(second) == "resent"
    assert "Second try." in smtp_server.text_of(emails_to(smtp_server, "pat@example.org")[-1])
    assert http.get(path_of(old)).status_code == 410


# -- bulk -----------------------------------------------------------------------------------


def hundred_rows() -> list[dict[str, str]]:
    """97 good rows and three bad ones: an invalid email, a duplicate and an empty email."""
    lines = ["email,name,contact_id,branch"]
    lines += [f"member{n}@example.org,Member {n},M-{n},North" for n in range(1, 98)]
    lines.insert(11, "not-an-email,Nobody,M-X,North")  # row 12
    lines.insert(21, "Member5@Example.org,Member Five again,M-5,North")  # row 22
    lines.insert(51, ",No Email,M-Y,North")  # row 52
    return csv_rows(*lines)


def test_bulk_sends_one_email_per_good_row_each_with_its_own_link_and_reports_bad_rows(
    http, smtp_server, portal
):
    rows = hundred_rows()
    assert len(rows) == 100
    result = bulk_invite(portal, rows, TEMPLATE + "\nBranch: {{ branch }}")
    assert result.totals == {"sent": 97, "skipped": 3, "failed": 0}
    skipped = {r.row: (r.email, r.reason) for r in result.rows if r.outcome == "skipped"}
    assert skipped == {
        12: ("not-an-email", "not a valid address: 'not-an-email'"),
        22: ("member5@example.org", "duplicate of row 6"),
        52: ("", "no email"),
    }

    assert deliver_due(limit=1000) == 97
    assert len(smtp_server.messages) == 97
    links = {}
    for message in smtp_server.messages:
        text = smtp_server.text_of(message)
        number = re.match(r"member(\d+)@example.org", message["To"]).group(1)
        assert text.startswith(f"Dear Member {number},")
        assert f"Your member number is M-{number}." in text
        assert "Branch: North" in text and "Join Lakeside MLS here: http" in text
        links[message["To"]] = link_in(smtp_server, message)
    assert len(links) == 97 and len(set(links.values())) == 97

    # Each link is that person's: the page names them and accepting links their contact.
    assert "member42@example.org" in text_of(http.get(path_of(links["member42@example.org"])))
    assert accept(http, links["member42@example.org"]).status_code == 303
    contact = db.session.execute(db.select(Contact).filter_by(external_id="M-42")).scalar_one()
    assert contact.user_id is not None


def test_rerunning_bulk_does_not_email_people_who_accepted_or_hold_a_working_link(
    http, smtp_server, clock, portal
):
    rows = csv_rows("email,name", "a@example.org,A", "b@example.org,B", "c@example.org,C")
    assert bulk_invite(portal, rows).totals["sent"] == 3
    accept(http, emailed_link(smtp_server, "a@example.org"))
    smtp_server.messages.clear()

    again = bulk_invite(portal, rows)
    assert again.totals == {"sent": 0, "skipped": 3, "failed": 0}
    reasons = [r.reason for r in again.rows]
    assert reasons[0].startswith("already accepted on ")
    assert all(r.startswith("already invited on ") for r in reasons[1:])
    assert deliver_due() == 0

    # Once the pending links have expired, a re-run sends fresh ones, never to the accepted.
    clock.advance(8 * 86400)
    later = bulk_invite(portal, rows)
    assert [(r.email, r.outcome) for r in later.rows] == [
        ("a@example.org", "skipped"), ("b@example.org", "sent"), ("c@example.org", "sent")]
    assert later.rows[1].reason == "resent: the earlier link had expired"
    assert sorted(m["To"] for m in emails_to(smtp_server, "b@example.org")
                  + emails_to(smtp_server, "c@example.org")) == ["b@example.org",
                                                                 "c@example.org"]
    assert emails_to(smtp_server, "a@example.org") == []
    assert db.session.scalar(db.select(db.func.count(Invitation.id))) == 3


def test_bulk_without_a_template_sends_the_portal_default_message(smtp_server, portal):
    bulk_invite(portal, csv_rows("Email,Name", "pat@example.org,Pat"))
    [message] = emails_to(smtp_server, "pat@example.org")
    assert DEFAULT_INVITATION_MESSAGE in smtp_server.text_of(message)
    assert smtp_server.text_of(message).startswith("Hello Pat,")


@pytest.mark.parametrize(("template", "error"), [
    pytest.param("Dear {{ name }}, welcome!", "must contain {{ login_link }}", id="no-link"),
    pytest.param("Welcome! login_link", "must contain {{ login_link }}", id="link-not-a-field"),
    pytest.param("{{ login_link }} {{ phone }}", "unknown placeholder(s) phone",
                 id="unknown-column"),
    pytest.param("{{ login_link }} {% if %}", "template: line 1:", id="syntax-error"),
    pytest.param("   ", "must not be empty", id="empty"),
])
def test_a_bad_template_is_refused_before_anything_is_sent(smtp_server, portal, template, error):
    with pytest.raises(InvitationError, match=re.escape(error)):
        bulk_invite(portal, csv_rows("email,name", "pat@example.org,Pat"), template)
    assert db.session.execute(db.select(Invitation)).first() is None
    assert deliver_due() == 0


def test_the_template_runs_in_a_sandbox(smtp_server, portal):
    template = "{{ login_link }} {{ name.__class__.__mro__[1].__subclasses__() }}"
    result = bulk_invite(portal, csv_rows("email,name", "pat@example.org,Pat"), template)
    [row] = result.rows
    assert row.outcome == "failed" and row.reason.startswith("template: ")
    assert deliver_due() == 0


def test_row_values_are_text_in_the_email_and_escaped_in_html(smtp_server, portal):
    bulk_invite(portal, csv_rows("email,name", "pat@example.org,<b>Pat</b>"),
                "Hi {{ name }}: {{ login_link }}")
    [message] = emails_to(smtp_server, "pat@example.org")
    assert "Hi <b>Pat</b>:" in smtp_server.text_of(message)
    assert "Hi &lt;b&gt;Pat&lt;/b&gt;:" in html_of(message)


@pytest.mark.parametrize(("text", "error"), [
    ("", "file: empty"),
    ("name,contact_id\nPat,1\n", "no email column"),
])
def test_a_file_without_an_email_column_is_refused(text, error):
    with pytest.raises(InvitationError, match=error):
        read_invitation_csv(text)


def test_blank_lines_keep_spreadsheet_row_numbers(smtp_server, portal):
    rows = csv_rows("email", "a@example.org", "", "b@example.org")
    result = bulk_invite(portal, rows)
    assert [(r.row, r.outcome, r.reason) for r in result.rows] == [
        (2, "sent", ""), (3, "skipped", "empty row"), (4, "sent", "")]


# -- command line ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    instance = tmp_path_factory.mktemp("invitations-cli") / "instance"
    assert_ok(idp(instance, "init"))
    assert_ok(idp(instance, "portals", "create", "--slug", "lakeside", "--name", "Lakeside MLS"))
    return instance


@pytest.fixture
def cli_instance(tmp_path: Path, cli_template: Path) -> Path:
    copy = tmp_path / "instance"
    shutil.copytree(cli_template, copy)
    return copy


def smtp_env(smtp_server) -> dict[str, str]:
    return {"IDP_MAIL__BACKEND": "smtp", "IDP_MAIL__SMTP_HOST": "127.0.0.1",
            "IDP_MAIL__SMTP_PORT": str(smtp_server.port)}


def test_staff_invite_one_person_from_the_command_line(cli_instance, smtp_server, tmp_path):
    message_file = tmp_path / "message.txt"
    message_file.write_text("Your agent invites you to the new portal.\n", encoding="utf-8")
    result = idp(cli_instance, "invitations", "send", "--portal", "lakeside",
                 "--email", "Pat@Example.org", "--name", "Pat", "--contact-id", "C-9",
                 "--message-file", str(message_file))
    assert_ok(result)
    assert "pat@example.org" in result.stdout
    assert query(cli_instance, "SELECT email, name, contact_external_id FROM invitations") == [
        ("pat@example.org", "Pat", "C-9")]

    assert_ok(idp(cli_instance, "worker", "--once", **smtp_env(smtp_server)))
    [message] = smtp_server.messages
    assert message["To"] == "pat@example.org"
    text = smtp_server.text_of(message)
    assert "Your agent invites you to the new portal." in text
    [link] = LINK.findall(text)
    assert re.match(r"^https?://[^/]+/password/[A-Za-z0-9_-]{40,}$", link), link

    listing = idp(cli_instance, "invitations", "list", "--portal", "lakeside", "--json")
    assert_ok(listing)
    [row] = json.loads(listing.stdout)
    assert (row["email"], row["status"], row["resent_count"]) == ("pat@example.org", "sent", 0)

    assert_ok(idp(cli_instance, "invitations", "resend", "--portal", "lakeside",
                  "--email", "pat@example.org"))
    listing = idp(cli_instance, "invitations", "list", "--portal", "lakeside",
                  "--status", "resent")
    assert_ok(listing)
    assert listing.stdout.splitlines()[1].startswith("pat@example.org\tresent\t")


def test_staff_invite_a_csv_from_the_command_line_with_a_bad_row(
    cli_instance, smtp_server, tmp_path
):
    csv_file = tmp_path / "members.csv"
    csv_file.write_text("Email,Name,Contact ID\nann@example.org,Ann,1\nnot-an-email,Bo,2\n"
                        "cy@example.org,Cy,3\n", encoding="utf-8")
    template = tmp_path / "template.txt"
    template.write_text("Dear {{ name }} (#{{ contact_id }}): {{ login_link }}\n",
                        encoding="utf-8")
    result = idp(cli_instance, "invitations", "bulk", str(csv_file), "--portal", "lakeside",
                 "--template-file", str(template))
    assert_ok(result)
    assert result.stdout.splitlines() == [
        "row 2\tann@example.org\tsent",
        "row 3\tnot-an-email\tskipped: not a valid address: 'not-an-email'",
        "row 4\tcy@example.org\tsent",
        "idp: invitations to lakeside: 2 sent, 1 skipped, 0 failed",
    ]
    assert_ok(idp(cli_instance, "worker", "--once", **smtp_env(smtp_server)))
    assert sorted(m["To"] for m in smtp_server.messages) == ["ann@example.org", "cy@example.org"]
    ann = next(m for m in smtp_server.messages if m["To"] == "ann@example.org")
    assert smtp_server.text_of(ann).startswith("Dear Ann (#1): http")

    again = idp(cli_instance, "invitations", "bulk", str(csv_file), "--portal", "lakeside",
                "--json")
    assert_ok(again)
    assert json.loads(again.stdout)["totals"] == {"sent": 0, "skipped": 3, "failed": 0}


def test_bulk_exits_non_zero_when_a_row_failed(cli_instance, tmp_path):
    import sqlite3

    csv_file = tmp_path / "members.csv"
    csv_file.write_text("email\nann@example.org\ngone@example.org\n", encoding="utf-8")
    assert_ok(idp(cli_instance, "users", "create", "--email", "gone@example.org",
                  "--password", "a password nobody knows"))
    with sqlite3.connect(cli_instance / "idp.sqlite3") as connection:
        connection.execute("UPDATE users SET disabled_at = '2026-01-01'")
    connection.close()
    result = idp(cli_instance, "invitations", "bulk", str(csv_file), "--portal", "lakeside")
    assert result.returncode == 1
    assert "row 3\tgone@example.org\tfailed: email: the account of gone@example.org is disabled" \
        in result.stdout
    assert result.stderr == "idp: error: 1 row(s) failed (see the report)\n"
    assert query(cli_instance, "SELECT email FROM invitations") == [("ann@example.org",)]


@pytest.mark.parametrize(("args", "fragment"), [
    pytest.param(["send", "--portal", "nowhere", "--email", "a@example.org"],
                 "no portal with slug 'nowhere'", id="unknown-portal"),
    pytest.param(["send", "--portal", "lakeside", "--email", "nope"],
                 "email: not a valid address", id="invalid-email"),
    pytest.param(["send", "--portal", "lakeside", "--email", " "], "email: missing",
                 id="empty-email"),
    pytest.param(["send", "--portal", "lakeside", "--email", "a@example.org",
                  "--message-file", "missing.txt"], "--message-file: missing.txt",
                 id="missing-message-file"),
    pytest.param(["send", "--portal", "lakeside"], "--email", id="no-email-option"),
    pytest.param(["bulk", "missing.csv", "--portal", "lakeside"], "FILE.csv: missing.csv",
                 id="missing-csv"),
    pytest.param(["bulk", "{no_email}", "--portal", "lakeside"], "no email column",
                 id="csv-without-email"),
    pytest.param(["bulk", "{good}", "--portal", "lakeside", "--template-file", "{no_link}"],
                 "must contain {{ login_link }}", id="template-without-link"),
    pytest.param(["resend", "--portal", "lakeside", "--email", "a@example.org"],
                 "no invitation for 'a@example.org'", id="resend-unknown"),
    pytest.param(["list", "--portal", "lakeside", "--status", "lost"], "--status",
                 id="unknown-status"),
])
def test_bad_input_is_one_line_and_sends_nothing(cli_instance, tmp_path, args, fragment):
    files = {"no_email": "name\nPat\n", "good": "email\npat@example.org\n",
             "no_link": "Dear {{ name }}\n"}
    for key, content in files.items():
        (tmp_path / key).write_text(content, encoding="utf-8")
    args = [a.format(**{k: str(tmp_path / k) for k in files}) if a.startswith("{")
            and not a.startswith("{{") else a for a in args]
    result = idp(cli_instance, "invitations", *args)
    assert_one_line_error(result, fragment)
    assert query(cli_instance, "SELECT count(*) FROM outbox_messages") == [(0,)]
    assert query(cli_instance, "SELECT count(*) FROM invitations") == [(0,)]
