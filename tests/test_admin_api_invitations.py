"""Admin API, invitations: invite one person or a CSV, list by status, resend."""

from __future__ import annotations

import re

import pytest

from idp.clock import utcnow
from idp.db import db
from idp.invitations import STATUSES
from idp.models import AuditEvent, Invitation, OutboxMessage
from idp.portals import create_portal
from tests.admin_fixtures import api_client, api_headers, api_token, assert_documented
from tests.driver import token_request

API = "/admin/api/v1"
LINK = re.compile(r"https?://\S+/password/(\S+)")
TEMPLATE = "Dear {{ name }}, your member number is {{ contact_id }}: {{ login_link }}"


@pytest.fixture
def portal(app):
    return create_portal("members", "Members Only")


@pytest.fixture
def other_portal(app):
    return create_portal("lakeside", "Lakeside MLS")


@pytest.fixture
def admin(http):
    return api_headers(api_token(http))


def invite(http, headers, slug="members", **body):
    body.setdefault("email", "casey.nguyen@example.com")
    return http.post(f"{API}/portals/{slug}/invitations", json=body, headers=headers)


def bulk(http, headers, csv, slug="members", **body):
    return http.post(f"{API}/portals/{slug}/invitations/bulk", json={"csv": csv, **body},
                     headers=headers)


def sent_links() -> list[str]:
    """The tokens of the links in every queued email (what must never come back)."""
    bodies = db.session.execute(db.select(OutboxMessage.body_text)).scalars()
    return [match for body in bodies for match in LINK.findall(body)]


# -- one person -----------------------------------------------------------------------------


def test_inviting_one_person_queues_the_email_and_answers_the_invitation(http, portal):
    client_id, secret = api_client("members")
    token = token_request(http, {"grant_type": "client_credentials", "scope": "idp:admin"},
                          client_id, secret).json["access_token"]
    response = invite(http, api_headers(token), name="Casey Nguyen", contact_id="M-2002",
                      message="Welcome aboard. Choose your password: {{ login_link }}")
    assert response.status_code == 201
    assert_documented(http, response, "POST", "/portals/{slug}/invitations")
    invitation = response.json
    assert (invitation["email"], invitation["name"], invitation["contact_id"],
            invitation["status"]) == ("casey.nguyen@example.com", "Casey Nguyen", "M-2002",
                                      "sent")
    [token_in_mail] = sent_links()
    assert token_in_mail not in response.get_data(as_text=True)
    assert "message" not in invitation
    event = db.session.execute(
        db.select(AuditEvent).filter_by(kind="invitation.sent")).scalar_one()
    assert (event.actor, event.subject, event.portal) == (
        f"client:{client_id}", "casey.nguyen@example.com", "members")


@pytest.mark.parametrize(("body", "field"), [
    ({"email": "not an address"}, "email"),
    ({"email": "x@example.com", "name": "A\x07B"}, "name"),
    ({"email": "x@example.com", "message": "   "}, "message"),
    ({"email": "x@example.com", "name": "n" * 201}, "name"),
    ({"email": "x@example.com", "role": "admin"}, "(body)"),
    ({"name": "Nobody"}, "(body)"),
    ({"email": 42}, "email"),
])
def test_invalid_fields_are_422_problems_naming_the_field(http, portal, admin, body, field):
    response = http.post(f"{API}/portals/members/invitations", json=body, headers=admin)
    assert response.status_code == 422, response.json
    assert response.mimetype == "application/problem+json"
    assert field in [error["field"] for error in response.json["errors"]]
    assert_documented(http, response, "POST", "/portals/{slug}/invitations")
    assert db.session.execute(db.select(Invitation)).first() is None


def test_a_body_that_is_not_json_is_400(http, portal, admin):
    response = http.post(f"{API}/portals/members/invitations", data="email=x@example.com",
                         content_type="application/x-www-form-urlencoded", headers=admin)
    assert response.status_code == 400
    assert_documented(http, response, "POST", "/portals/{slug}/invitations")


# -- bulk -----------------------------------------------------------------------------------


def test_bulk_reports_every_row_and_a_second_run_sends_nothing(http, portal, admin):
    csv = ("email,name,contact_id\n"
           "ann@example.com,Ann,M-1\n"
           "not-an-email,Bad,M-2\n"
           "ANN@example.com,Ann again,M-3\n"
           "bo@example.com,Bo,M-4\n")
    response = bulk(http, admin, csv, template=TEMPLATE)
    assert response.status_code == 200
    assert_documented(http, response, "POST", "/portals/{slug}/invitations/bulk")
    rows = {row["row"]: (row["outcome"], row["reason"]) for row in response.json["rows"]}
    assert rows[2] == ("sent", "")
    assert rows[3][0] == "skipped" and "not a valid address" in rows[3][1]
    assert rows[4] == ("skipped", "duplicate of row 2")
    assert response.json["totals"] == {"sent": 2, "skipped": 2, "failed": 0}
    mail = db.session.execute(db.select(OutboxMessage.body_text).filter_by(
        recipient="bo@example.com")).scalar_one()
    assert "Dear Bo, your member number is M-4:" in mail
    again = bulk(http, admin, csv, template=TEMPLATE).json
    assert again["totals"] == {"sent": 0, "skipped": 4, "failed": 0}
    subjects = db.session.execute(db.select(AuditEvent.subject).filter_by(
        kind="invitation.sent")).scalars().all()
    assert sorted(subjects) == ["ann@example.com", "bo@example.com"]


@pytest.mark.parametrize(("body", "field"), [
    ({"csv": "name\nAnn\n"}, "csv"),
    ({"csv": "email\na@example.com\n", "template": "Hello {{ name }}"}, "template"),
    ({"csv": "email\na@example.com\n", "template": "{{ login_link }} {{ secret }}"},
     "template"),
    ({"csv": "email\na@example.com\n", "template": "{% for %}"}, "template"),
    ({"csv": ""}, "csv"),
    ({"csv": "email\na@example.com\n", "extra": 1}, "(body)"),
])
def test_a_bulk_file_or_template_that_cannot_be_used_is_422(http, portal, admin, body, field):
    response = http.post(f"{API}/portals/members/invitations/bulk", json=body, headers=admin)
    assert response.status_code == 422, response.json
    assert field in [error["field"] for error in response.json["errors"]]
    assert_documented(http, response, "POST", "/portals/{slug}/invitations/bulk")
    assert db.session.execute(db.select(Invitation)).first() is None


# -- listing and resending ------------------------------------------------------------------


def test_list_filters_by_status_and_pages(http, portal, admin, clock):
    for n in range(3):
        invite(http, admin, email=f"p{n}@example.com")
    clock.advance(8 * 86400)  # past the 7-day link of those three
    admin = api_headers(api_token(http))  # (and past the first token)
    ids = [invite(http, admin, email=f"q{n}@example.com").json["id"] for n in range(2)]
    http.post(f"{API}/portals/members/invitations/{ids[0]}/resend", headers=admin)
    accepted = db.session.get(Invitation, ids[1])
    accepted.accepted_at = utcnow()
    db.session.commit()

    counts = {}
    for status in STATUSES:
        page = http.get(f"{API}/portals/members/invitations", headers=admin,
                        query_string={"status": status})
        assert page.status_code == 200
        assert_documented(http, page, "GET", "/portals/{slug}/invitations")
        assert {item["status"] for item in page.json["items"]} <= {status}
        counts[status] = page.json["total"]
    assert counts == {"sent": 0, "opened": 0, "accepted": 1, "expired": 3, "resent": 1}

    first = http.get(f"{API}/portals/members/invitations?per_page=2", headers=admin)
    assert first.json["total"] == 5
    assert [i["email"] for i in first.json["items"]] == ["q1@example.com", "q0@example.com"]
    assert first.headers["Link"] == f'<{first.json["next"]}>; rel="next"'
    last = http.get(f"{API}/portals/members/invitations?per_page=2&page=3", headers=admin)
    assert [i["email"] for i in last.json["items"]] == ["p0@example.com"]
    assert last.json["next"] is None
    bad = http.get(f"{API}/portals/members/invitations?status=lost", headers=admin)
    assert bad.status_code == 422 and bad.json["errors"][0]["field"] == "status"


def test_resend_sends_a_new_link_and_the_old_one_stops(http, portal, admin):
    invitation = invite(http, admin).json
    [first_link] = sent_links()
    response = http.post(f"{API}/portals/members/invitations/{invitation['id']}/resend",
                         headers=admin)
    assert response.status_code == 200
    assert_documented(http, response, "POST", "/portals/{slug}/invitations/{invitation_id}/resend")
    assert (response.json["status"], response.json["resent_count"]) == ("resent", 1)
    links = sent_links()
    assert len(links) == 2 and first_link in links
    assert http.get(f"/password/{first_link}").status_code != 200
    assert all(link not in response.get_data(as_text=True) for link in links)
    assert db.session.execute(db.select(AuditEvent).filter_by(
        kind="invitation.resent")).scalar_one().actor.startswith("client:")


def test_resend_of_an_accepted_invitation_is_409(http, portal, admin):
    invitation_id = invite(http, admin).json["id"]
    db.session.get(Invitation, invitation_id).accepted_at = utcnow()
    db.session.commit()
    response = http.post(f"{API}/portals/members/invitations/{invitation_id}/resend",
                         headers=admin)
    assert response.status_code == 409
    assert_documented(http, response, "POST", "/portals/{slug}/invitations/{invitation_id}/resend")


@pytest.mark.parametrize("invitation_id", ["999", "abc", "0", "99999999999999999999", "-1"])
def test_resend_of_an_unknown_invitation_is_404(http, portal, admin, invitation_id):
    response = http.post(f"{API}/portals/members/invitations/{invitation_id}/resend",
                         headers=admin)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


# -- who may --------------------------------------------------------------------------------


def test_a_portal_client_cannot_touch_another_portals_invitations(http, portal, other_portal,
                                                                   admin):
    members_invitation = invite(http, admin).json["id"]
    lakeside = api_headers(api_token(http, "lakeside"))
    assert invite(http, lakeside, slug="lakeside", email="lee@example.com").status_code == 201
    for response in (
        http.get(f"{API}/portals/members/invitations", headers=lakeside),
        invite(http, lakeside, email="mallory@example.com"),
        bulk(http, lakeside, "email\nmallory@example.com\n"),
        http.post(f"{API}/portals/members/invitations/{members_invitation}/resend",
                  headers=lakeside),
        # Its own portal in the path does not reach another portal's invitation either.
        http.post(f"{API}/portals/lakeside/invitations/{members_invitation}/resend",
                  headers=lakeside),
    ):
        assert response.status_code == 404
    emails = db.session.execute(db.select(Invitation.email)).scalars().all()
    assert sorted(emails) == ["casey.nguyen@example.com", "lee@example.com"]
    assert db.session.get(Invitation, members_invitation).resent_count == 0


def test_without_a_token_nothing_is_sent(http, portal):
    response = invite(http, {})
    assert response.status_code == 401
    assert_documented(http, response, "POST", "/portals/{slug}/invitations")
    client_id, secret = api_client()
    token = token_request(http, {"grant_type": "client_credentials"},
                          client_id, secret).json["access_token"]
    assert bulk(http, api_headers(token), "email\na@example.com\n").status_code == 403
    assert db.session.execute(db.select(Invitation)).first() is None
