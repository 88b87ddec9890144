"""Admin API, users: find people, read one, the help-desk actions, legacy imports."""

from __future__ import annotations

import re

import bcrypt
import pytest

from idp.admin.access import grant_role
from idp.clock import utcnow
from idp.contacts import link_contact
from idp.db import db
from idp.models import (
    AuditEvent,
    Contact,
    IdpSession,
    LegacyAccount,
    MfaMethod,
    OutboxMessage,
    User,
)
from idp.models.legacy import LINKED
from idp.portals import create_portal
from idp.security import throttle
from tests.admin_fixtures import api_client, api_headers, api_token, assert_documented
from tests.driver import sign_in, token_request
from tests.factories import PASSWORD, make_client, make_mfa_method, make_user

API = "/admin/api/v1"


@pytest.fixture
def members(app):
    return create_portal("members", "Members Only")


@pytest.fixture
def lakeside(app):
    return create_portal("lakeside", "Lakeside MLS")


@pytest.fixture
def admin(http):
    return api_headers(api_token(http))


@pytest.fixture
def lakeside_client(http, lakeside):
    return api_headers(api_token(http, "lakeside"))


def member(portal, email: str, contact_id: str, **kwargs) -> User:
    """A person with an account, linked to `portal`'s contact `contact_id`."""
    user = make_user(email, **kwargs)
    join(user, portal, contact_id)
    return user


def join(user: User, portal, contact_id: str) -> None:
    contact = Contact(portal_id=portal.id, external_id=contact_id, email=user.email)
    db.session.add(contact)
    link_contact(contact, user)
    db.session.commit()


def post(http, headers, path, **body):
    return http.post(f"{API}{path}", json=body, headers=headers)


def events(kind: str) -> list[AuditEvent]:
    return list(db.session.execute(db.select(AuditEvent).filter_by(kind=kind)).scalars())


# -- finding and reading --------------------------------------------------------------------


def test_search_by_email_name_or_contact_id_and_by_portal(http, members, lakeside, admin):
    morgan = member(members, "morgan.lee@example.com", "M-2001", name="Morgan Lee")
    member(lakeside, "jordan.smith@example.com", "L-42", name="Jordan Smith")
    for query, expected in (({"q": "morgan"}, ["morgan.lee@example.com"]),
                            ({"q": "M-2001"}, ["morgan.lee@example.com"]),
                            ({"q": "smith"}, ["jordan.smith@example.com"]),
                            ({"portal": "members"}, ["morgan.lee@example.com"]),
                            ({"q": "jordan", "portal": "members"}, [])):
        page = http.get(f"{API}/users", query_string=query, headers=admin)
        assert page.status_code == 200
        assert_documented(http, page, "GET", "/users")
        assert [u["email"] for u in page.json["items"]] == expected, query
    [found] = http.get(f"{API}/users?q=morgan", headers=admin).json["items"]
    assert found["sub"] == morgan.sub and found["status"] == "active"


def test_search_pages_with_next_and_a_link_header(http, members, admin):
    for n in range(3):
        member(members, f"p{n}@example.com", f"M-{n}")
    first = http.get(f"{API}/users?portal=members&per_page=2", headers=admin)
    assert [u["email"] for u in first.json["items"]] == ["p0@example.com", "p1@example.com"]
    assert first.headers["Link"] == f'<{first.json["next"]}>; rel="next"'
    second = http.get(first.json["next"], headers=admin)
    assert [u["email"] for u in second.json["items"]] == ["p2@example.com"]
    assert second.json["next"] is None


def test_a_person_shows_status_portals_mfa_kinds_and_sessions_but_no_secret(
        http, members, admin):
    person = member(members, "morgan.lee@example.com", "M-2001")
    _, totp_secret = make_mfa_method(person, "totp")
    make_mfa_method(person, "sms", "+12035550163")
    rp = make_client(portal_slug="members")
    sign_in(http, rp.client.client_id, person.email)
    response = http.get(f"{API}/users/{person.sub}", headers=admin)
    assert response.status_code == 200
    assert_documented(http, response, "GET", "/users/{sub}")
    shown = response.json
    assert (shown["status"], shown["locked"], shown["has_password"], shown["sessions"]) == (
        "active", False, True, 1)
    assert shown["portals"] == [{"slug": "members", "name": "Members Only",
                                 "contact_ids": ["M-2001"], "legacy_usernames": [],
                                 "invitation_status": None}]
    assert shown["contacts"] == [{"portal": "members", "contact_id": "M-2001",
                                  "preferred_username": "morgan.leeM-2001"}]
    assert [m["kind"] for m in shown["mfa_methods"]] == ["totp", "sms"]
    text = response.get_data(as_text=True)
    for secret in (totp_secret, person.password_hash, "5550163", PASSWORD):
        assert secret not in text


def test_an_unknown_sub_is_404(http, admin, app):
    response = http.get(f"{API}/users/nobody", headers=admin)
    assert response.status_code == 404
    assert_documented(http, response, "GET", "/users/{sub}")


# -- creating -------------------------------------------------------------------------------


def test_create_makes_an_account_without_password_and_invites_the_person(http, members):
    client_id, secret = api_client("members")
    token = token_request(http, {"grant_type": "client_credentials", "scope": "idp:admin"},
                          client_id, secret).json["access_token"]
    headers = api_headers(token)
    response = post(http, headers, "/users", email="Casey.Nguyen@example.com",
                    name="Casey Nguyen", portal="members")
    assert response.status_code == 201
    assert_documented(http, response, "POST", "/users")
    created = response.json
    assert created["user"]["email"] == "casey.nguyen@example.com"
    assert created["invitation"]["status"] == "sent"
    assert response.headers["Location"] == f"/admin/api/v1/users/{created['user']['sub']}"
    user = db.session.execute(db.select(User).filter_by(sub=created["user"]["sub"])).scalar_one()
    assert user.password_hash is None and not user.email_verified
    assert db.session.execute(db.select(OutboxMessage.kind).filter_by(
        recipient=user.email)).scalar_one() == "invitation"
    [event] = events("user.created")
    assert (event.actor, event.portal) == (f"client:{client_id}", "members")
    # The portal's client now finds the person it invited.
    assert http.get(f"{API}/users/{user.sub}", headers=headers).status_code == 200

    again = post(http, headers, "/users", email="casey.nguyen@example.com", portal="members")
    assert again.status_code == 409
    assert_documented(http, again, "POST", "/users")


@pytest.mark.parametrize(("body", "field"), [
    ({"email": "nope", "portal": "members"}, "email"),
    ({"email": "a@example.com", "portal": "members", "password": "chosen by staff"}, "(body)"),
    ({"email": "a@example.com"}, "(body)"),
    ({"email": "a@example.com", "portal": "members", "message": " "}, "message"),
    ({"email": "a@example.com", "portal": "Members!"}, "portal"),
    ({"email": "a@example.com", "portal": "members", "name": "A\x07B"}, "name"),
    ({"email": "a(b)@example.com", "portal": "members"}, "email"),
])
def test_create_refuses_bad_fields_and_makes_nothing(http, members, admin, body, field):
    response = http.post(f"{API}/users", json=body, headers=admin)
    assert response.status_code == 422, response.json
    assert field in [e["field"] for e in response.json["errors"]]
    assert_documented(http, response, "POST", "/users")
    assert db.session.execute(db.select(User).where(User.email.like("a%"))).first() is None
    assert db.session.execute(db.select(OutboxMessage)).first() is None


# -- help-desk actions ----------------------------------------------------------------------


def test_disable_ends_sessions_and_enable_lets_them_back(http, members, admin):
    person = member(members, "morgan.lee@example.com", "M-2001")
    sign_in(http, make_client(portal_slug="members").client.client_id, person.email)
    response = post(http, admin, f"/users/{person.sub}/disable")
    assert response.status_code == 200
    assert_documented(http, response, "POST", "/users/{sub}/disable")
    assert (response.json["status"], response.json["sessions"]) == ("disabled", 0)
    assert events("user.disabled")[0].actor.startswith("client:")
    twice = post(http, admin, f"/users/{person.sub}/disable")
    assert twice.status_code == 409
    assert_documented(http, twice, "POST", "/users/{sub}/disable")
    enabled = post(http, admin, f"/users/{person.sub}/enable")
    assert enabled.status_code == 200 and enabled.json["status"] == "active"
    assert post(http, admin, f"/users/{person.sub}/enable").status_code == 409


def test_unlock_clears_the_failed_sign_ins(http, members, admin):
    person = member(members, "morgan.lee@example.com", "M-2001")
    key = throttle.account_key("password", person.email)
    for _ in range(10):
        throttle.record_failure(key)
    assert http.get(f"{API}/users/{person.sub}", headers=admin).json["locked"] is True
    response = post(http, admin, f"/users/{person.sub}/unlock")
    assert response.status_code == 200
    assert_documented(http, response, "POST", "/users/{sub}/unlock")
    assert response.json["locked"] is False
    assert throttle.check(key).allowed
    assert len(events("user.unlocked")) == 1


def test_end_sessions_signs_the_person_out(http, members, admin):
    person = member(members, "morgan.lee@example.com", "M-2001")
    sign_in(http, make_client(portal_slug="members").client.client_id, person.email)
    response = post(http, admin, f"/users/{person.sub}/end-sessions")
    assert response.status_code == 200
    assert_documented(http, response, "POST", "/users/{sub}/end-sessions")
    assert response.json == {"sessions_ended": 1}
    live = db.session.execute(db.select(IdpSession).filter_by(
        user_id=person.id, ended_at=None)).first()
    assert live is None
    assert events("user.sessions_ended")[0].details["sessions_ended"] == 1


def test_reset_mfa_removes_methods_and_records_the_reason(http, members, admin):
    person = member(members, "morgan.lee@example.com", "M-2001")
    make_mfa_method(person, "totp")
    missing = post(http, admin, f"/users/{person.sub}/reset-mfa")
    assert missing.status_code == 422
    assert_documented(http, missing, "POST", "/users/{sub}/reset-mfa")
    for reason in ("   ", "lost phone\nforged: audit line"):
        refused = post(http, admin, f"/users/{person.sub}/reset-mfa", reason=reason)
        assert refused.status_code == 422 and refused.json["errors"][0]["field"] == "reason"
    response = post(http, admin, f"/users/{person.sub}/reset-mfa", reason="ticket 4711")
    assert response.status_code == 200
    assert_documented(http, response, "POST", "/users/{sub}/reset-mfa")
    assert response.json["mfa_methods"] == []
    assert db.session.execute(db.select(MfaMethod).filter_by(user_id=person.id)).first() is None
    assert events("user.mfa_reset")[0].details["reason"] == "ticket 4711"


def test_send_reset_queues_an_email_for_one_of_the_persons_portals(http, members, lakeside,
                                                                   admin):
    person = member(members, "morgan.lee@example.com", "M-2001")
    response = post(http, admin, f"/users/{person.sub}/send-reset", portal="members")
    assert response.status_code == 202
    assert_documented(http, response, "POST", "/users/{sub}/send-reset")
    assert response.json == {"email": person.email, "portal": "members"}
    message = db.session.execute(db.select(OutboxMessage).filter_by(
        recipient=person.email, kind="reset_password")).scalar_one()
    [token] = re.findall(r"/password/([\w-]+)", message.body_text)
    assert token not in response.get_data(as_text=True)
    elsewhere = post(http, admin, f"/users/{person.sub}/send-reset", portal="lakeside")
    assert elsewhere.status_code == 422 and elsewhere.json["errors"][0]["field"] == "portal"
    assert events("user.reset_email_sent")[0].portal == "members"


# -- who may --------------------------------------------------------------------------------


def test_a_portal_client_sees_and_helps_only_its_own_people(http, members, lakeside,
                                                            lakeside_client):
    outsider = member(members, "morgan.lee@example.com", "M-2001")
    own = member(lakeside, "jordan.smith@example.com", "L-42")
    listed = http.get(f"{API}/users", headers=lakeside_client).json["items"]
    assert [u["email"] for u in listed] == ["jordan.smith@example.com"]
    assert http.get(f"{API}/users?portal=members", headers=lakeside_client).status_code == 404
    for response in (
        http.get(f"{API}/users/{outsider.sub}", headers=lakeside_client),
        post(http, lakeside_client, f"/users/{outsider.sub}/disable"),
        post(http, lakeside_client, f"/users/{outsider.sub}/end-sessions"),
        post(http, lakeside_client, f"/users/{outsider.sub}/reset-mfa", reason="x"),
        post(http, lakeside_client, f"/users/{outsider.sub}/send-reset", portal="lakeside"),
    ):
        assert response.status_code == 404
    assert outsider.is_active
    assert post(http, lakeside_client, "/users", email="x@example.com",
                portal="members").status_code == 404
    assert post(http, lakeside_client, f"/users/{own.sub}/disable").status_code == 200
    no_portal = post(http, lakeside_client, f"/users/{own.sub}/send-reset")
    assert no_portal.status_code == 422


def test_a_portal_client_cannot_disable_a_person_who_also_uses_another_portal(
        http, members, lakeside, lakeside_client):
    shared = member(members, "morgan.lee@example.com", "M-2001")
    join(shared, lakeside, "L-7")
    shown = http.get(f"{API}/users/{shared.sub}", headers=lakeside_client).json
    # Only its own portal is shown to it.
    assert [p["slug"] for p in shown["portals"]] == ["lakeside"]
    assert [c["contact_id"] for c in shown["contacts"]] == ["L-7"]
    for action, body in (("disable", {}), ("reset-mfa", {"reason": "x"})):
        response = post(http, lakeside_client, f"/users/{shared.sub}/{action}", **body)
        assert response.status_code == 403, action
        assert_documented(http, response, "POST", "/users/{sub}/" + action)
    assert shared.is_active
    assert post(http, lakeside_client, f"/users/{shared.sub}/unlock").status_code == 200


def test_without_a_token_nothing_happens(http, members):
    person = member(members, "morgan.lee@example.com", "M-2001")
    for response in (http.get(f"{API}/users"),
                     http.post(f"{API}/users/{person.sub}/disable")):
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
    assert person.is_active


# -- legacy accounts ------------------------------------------------------------------------


def legacy_csv() -> str:
    hashed = bcrypt.hashpw(b"tulip42", bcrypt.gensalt(4)).decode()
    return ("legacy_username,email,name,phone,contact_id,password_hash\n"
            f"jsmith_agent42,jordan.smith@example.com,Jordan Smith,,L-42,{hashed}\n"
            "pat_agent7,pat@example.com,Pat,,L-7,\n"
            "bad_hash,b@example.com,B,,L-8,not-a-hash\n"
            f"JSMITH_AGENT42,x@example.com,Dup,,L-9,{hashed}\n")


def test_legacy_import_reports_rows_and_status_counts_them(http, lakeside, lakeside_client):
    response = http.post(f"{API}/portals/lakeside/legacy-accounts/import",
                         data=legacy_csv(), content_type="text/csv", headers=lakeside_client)
    assert response.status_code == 200
    assert_documented(http, response, "POST", "/portals/{slug}/legacy-accounts/import")
    report = response.json
    assert (report["created"], report["without_password"]) == (2, 1)
    assert [e["row"] for e in report["errors"]] == [4, 5]
    assert "$2b$" not in response.get_data(as_text=True)
    [event] = events("legacy.imported")
    assert event.details["created"] == 2 and event.actor.startswith("client:")

    account = db.session.execute(db.select(LegacyAccount).filter_by(
        legacy_username="pat_agent7")).scalar_one()
    account.migrated_at, account.outcome = utcnow(), LINKED
    db.session.commit()
    status = http.get(f"{API}/portals/lakeside/legacy-accounts/status",
                      headers=lakeside_client)
    assert status.status_code == 200
    assert_documented(http, status, "GET", "/portals/{slug}/legacy-accounts/status")
    counts = status.json
    assert (counts["total"], counts["migrated"], counts["linked"], counts["pending"]) == (
        2, 1, 1, 1)


def test_legacy_import_again_changes_nothing(http, lakeside, admin):
    text = legacy_csv()
    http.post(f"{API}/portals/lakeside/legacy-accounts/import", data=text,
              content_type="text/csv", headers=admin)
    again = http.post(f"{API}/portals/lakeside/legacy-accounts/import", data=text,
                      content_type="text/csv", headers=admin).json
    assert (again["created"], again["unchanged"]) == (0, 2)


def test_legacy_import_refuses_a_file_without_the_columns(http, lakeside, admin):
    response = http.post(f"{API}/portals/lakeside/legacy-accounts/import",
                         data="username,email\nx,y\n", content_type="text/csv", headers=admin)
    assert response.status_code == 422
    assert "legacy_username" in response.json["detail"]
    assert_documented(http, response, "POST", "/portals/{slug}/legacy-accounts/import")


def test_legacy_accounts_of_another_portal_are_out_of_reach(http, members, lakeside,
                                                           lakeside_client):
    for response in (
        http.post(f"{API}/portals/members/legacy-accounts/import", data=legacy_csv(),
                  content_type="text/csv", headers=lakeside_client),
        http.get(f"{API}/portals/members/legacy-accounts/status", headers=lakeside_client),
    ):
        assert response.status_code == 404
    assert db.session.execute(db.select(LegacyAccount)).first() is None


def test_a_portal_client_cannot_reset_the_mfa_of_staff(http, lakeside, lakeside_client):
    """Resetting an admin's MFA would let whoever has their password enrol a new factor."""
    staff = member(lakeside, "office.manager@example.org", "L-9001")
    make_mfa_method(staff, "totp")
    grant_role(staff.email, "admin", actor="test")
    refused = post(http, lakeside_client, f"/users/{staff.sub}/reset-mfa", reason="ticket 1")
    assert refused.status_code == 403
    assert "only an administrator" in refused.json["detail"]
    assert db.session.execute(db.select(MfaMethod).filter_by(user_id=staff.id)).first()
