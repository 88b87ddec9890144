"""The audit log in the console and the API: filters, pages, CSV export, portal scope."""

from __future__ import annotations

import csv
import io

import pytest

from idp import audit
from idp.db import db
from idp.models import AuditEvent
from idp.portals import create_portal
from tests.admin_fixtures import (
    api_headers,
    api_token,
    assert_documented,
    console_sign_in,
    make_staff,
)
from tests.factories import make_client, make_user

EVENTS_URL = "/admin/api/v1/audit-events"
CSV_HEADER = ["id", "time_utc", "kind", "actor", "subject", "portal", "client_id", "ip",
              "user_agent", "details"]


def add_event(app, kind: str, ip: str = "203.0.113.7", user_agent: str = "Firefox/130",
              **fields) -> None:
    """An event recorded during a request from `ip` with `user_agent`."""
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": ip},
                                  headers={"User-Agent": user_agent}):
        audit.record(kind, **fields)


@pytest.fixture
def lakeside(app):
    return create_portal("lakeside", "Lakeside MLS")


@pytest.fixture
def hillcrest(app):
    return create_portal("hillcrest", "Hillcrest Church")


@pytest.fixture
def log(app, clock, lakeside, hillcrest):
    """A small log over three days: sign-ins at two portals, an MFA event, a client change.

    It starts at noon (UTC), so that no day boundary falls inside a test."""
    from idp.clock import utcnow

    now = utcnow()
    clock.advance((now.replace(hour=12, minute=0, second=0) - now).total_seconds())
    pat = make_user("pat@example.org")
    lakeside_app = make_client(portal_slug="lakeside", name="Lakeside app")
    add_event(app, "signin.failure", actor="anonymous", subject="pat@example.org",
              client_id=lakeside_app.client.client_id, reason="wrong_credentials")
    clock.advance(86400)
    add_event(app, "signin.password", ip="198.51.100.4", actor=f"user:{pat.sub}",
              subject=pat.email, client_id=lakeside_app.client.client_id)
    add_event(app, "mfa.passed", ip="198.51.100.4", actor=f"user:{pat.sub}",
              subject=pat.email, method_kind="totp")
    clock.advance(86400)
    add_event(app, "signin.failure", ip="192.0.2.99", actor="anonymous",
              subject="sam@example.org", portal="hillcrest", reason="wrong_credentials")
    add_event(app, "client.updated", actor="admin:root@example.org",
              subject=lakeside_app.client.client_id, portal="lakeside")
    return {"pat": pat, "client_id": lakeside_app.client.client_id}


def rows_of(page) -> list[list[str]]:
    """The audit table's rows as cell texts (tags stripped)."""
    import re

    body = page.get_data(as_text=True)
    table = body.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in body else ""
    return [[" ".join(re.sub(r"<[^>]+>", " ", cell).split())
             for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)]


STAFF = "staff@example.org"


def console_kinds(http, **filters) -> list[str]:
    """The kinds listed, leaving out the staff member's own sign-in (its password, MFA)."""
    page = http.get("/admin/audit", query_string=filters)
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    return [row[1] for row in rows_of(page) if row[3] != STAFF]


@pytest.fixture
def admin_http(app, http):
    console_sign_in(http, make_staff("admin", email=STAFF))
    return http


# -- the console page ----------------------------------------------------------------------


def test_the_page_shows_every_event_newest_first_with_who_what_where(app, log, admin_http):
    page = admin_http.get("/admin/audit")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    for heading in ("Time (UTC)", "Kind", "Actor", "Subject", "Portal / client", "IP address",
                    "User agent", "Details"):
        assert f'<th scope="col">{heading}</th>' in body
    logged = {"client.updated", "signin.failure", "mfa.passed", "signin.password"}
    rows = [row for row in rows_of(page) if row[1] in logged and row[3] != STAFF]
    assert [row[1] for row in rows] == ["client.updated", "signin.failure", "mfa.passed",
                                        "signin.password", "signin.failure"]
    oldest = rows[-1]
    assert oldest[2:] == ["anonymous", "pat@example.org", f"lakeside {log['client_id']}",
                          "203.0.113.7", "Firefox/130", "reason: wrong_credentials"]
    assert 'href="/admin/audit"' in admin_http.get("/admin/").get_data(as_text=True)


@pytest.mark.parametrize(("filters", "expected"), [
    ({"kind": "signin."}, ["signin.failure", "signin.password", "signin.failure"]),
    ({"kind": "signin.failure"}, ["signin.failure", "signin.failure"]),
    ({"kind": "mfa"}, ["mfa.passed"]),
    ({"actor": "anonymous"}, ["signin.failure", "signin.failure"]),
    ({"actor": "root@example.org"}, ["client.updated"]),
    ({"actor": "pat@example.org"}, ["mfa.passed", "signin.password"]),
    ({"subject": "PAT@example.org"}, ["mfa.passed", "signin.password", "signin.failure"]),
    ({"subject": "sam@example.org"}, ["signin.failure"]),
    ({"portal": "hillcrest"}, ["signin.failure", "portal.created"]),
    # A portal's events include those of its clients (sign-ins name the client only).
    ({"portal": "lakeside", "kind": "signin."}, ["signin.password", "signin.failure"]),
    ({"ip": "198.51.100.4"}, ["mfa.passed", "signin.password"]),
    ({"ip": "192.0.2.99", "kind": "signin."}, ["signin.failure"]),
    ({"kind": "signin.", "from": "+1d", "to": "+1d"}, ["signin.password"]),
    ({"kind": "signin.", "to": "+0d"}, ["signin.failure"]),
    ({"kind": "signin.", "from": "+2d"}, ["signin.failure"]),
    ({"kind": "nothing.like.this"}, []),
])
def test_each_filter_narrows_the_events(app, log, admin_http, filters, expected):
    from datetime import timedelta

    from idp.clock import utcnow

    start = utcnow() - timedelta(days=2)
    for name in ("from", "to"):
        if name in filters:
            filters[name] = (start + timedelta(days=int(filters[name][1:-1]))).date().isoformat()
    assert console_kinds(admin_http, **filters) == expected


def test_the_subject_filter_finds_a_person_by_sub_too(app, log, admin_http):
    assert console_kinds(admin_http, subject=log["pat"].sub) == [
        "mfa.passed", "signin.password", "signin.failure"]
    assert console_kinds(admin_http, client=log["client_id"]) == [
        "signin.password", "signin.failure"]


@pytest.mark.parametrize(("filters", "message"), [
    ({"ip": "not an address"}, "ip: an IPv4 or IPv6 address"),
    ({"from": "yesterday"}, "from: a date (2026-01-31) or a date-time"),
    ({"from": "2026-02-30"}, "from: a date"),
    ({"to": "9999-12-31T23:59:59-23:00"}, "to: a date"),
    ({"from": "2026-03-02", "to": "2026-03-01"}, "to: must be after from"),
    ({"subject": "x" * 400}, "subject: at most 320 characters"),
    ({"actor": "pat\x00"}, "actor: no control characters"),
    ({"page": "two"}, "page: a whole number"),
])
def test_a_wrong_filter_is_named_on_the_page(app, admin_http, filters, message):
    page = admin_http.get("/admin/audit", query_string=filters)
    assert page.status_code == 400
    body = page.get_data(as_text=True)
    assert message in body and "<tbody>" not in body
    assert "Show events" in body  # the form is there to correct it


def test_fifty_events_a_page_with_links_to_older_and_newer(app, admin_http):
    for number in range(60):
        audit.record("test.event", actor="system", subject=f"s{number}")
    first = admin_http.get("/admin/audit", query_string={"kind": "test."})
    assert [row[3] for row in rows_of(first)][:2] == ["s59", "s58"]
    assert len(rows_of(first)) == 50
    body = first.get_data(as_text=True)
    assert "60 events matching" in body and "Page 1 of 2" in body
    assert 'href="/admin/audit?page=2&amp;kind=test." rel="next"' in body
    second = admin_http.get("/admin/audit?page=2&kind=test.")
    assert [row[3] for row in rows_of(second)] == [f"s{n}" for n in range(9, -1, -1)]
    assert "Newer events" in second.get_data(as_text=True)


# -- CSV export ------------------------------------------------------------------------------


def read_csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def test_export_downloads_the_filtered_events_with_fixed_columns(app, log, admin_http):
    response = admin_http.get("/admin/audit/export.csv", query_string={"kind": "signin."})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith(
        'attachment; filename="audit-events-')
    rows = [row for row in read_csv(response) if row[4] != STAFF]
    assert rows[0] == CSV_HEADER
    assert [row[2] for row in rows[1:]] == ["signin.failure", "signin.password",
                                            "signin.failure"]
    oldest = dict(zip(CSV_HEADER, rows[-1], strict=True))
    assert oldest["subject"] == "pat@example.org" and oldest["ip"] == "203.0.113.7"
    assert oldest["user_agent"] == "Firefox/130" and oldest["portal"] == "lakeside"
    assert oldest["details"] == '{"reason":"wrong_credentials"}'
    assert oldest["time_utc"].endswith("Z")
    # Taking a copy of the log is itself in the log, with the filter used.
    [exported] = db.session.scalars(
        db.select(AuditEvent).filter_by(kind="audit.exported")).all()
    assert exported.details == {"filters": {"kind": "signin."}}
    assert exported.actor.startswith("admin:")


@pytest.mark.parametrize("typed", ["=HYPERLINK(\"https://evil.example\")", "+1+1", "-2+3",
                                   "@SUM(A1)", "\tTAB"])
def test_export_cells_never_run_as_spreadsheet_formulas(app, admin_http, typed):
    # The sign-in page records whatever an attacker types as the subject.
    audit.record("signin.failure", actor="anonymous", subject=typed, reason=typed)
    rows = read_csv(admin_http.get("/admin/audit/export.csv?kind=signin.failure"))
    [row] = rows[1:]
    assert row[4] == "'" + typed
    assert not any(cell.startswith(("=", "+", "-", "@", "\t")) for cell in row)


def test_export_streams_a_large_log_completely(app, admin_http):
    db.session.add_all(AuditEvent(kind="bulk.event", actor="system", subject=f"s{n}",
                                  details={}) for n in range(1234))
    db.session.commit()
    response = admin_http.get("/admin/audit/export.csv?kind=bulk.")
    assert response.is_streamed
    rows = read_csv(response)
    assert len(rows) == 1 + 1234
    assert len({row[0] for row in rows[1:]}) == 1234  # no event twice across chunks


def test_a_wrong_filter_exports_nothing(app, admin_http):
    response = admin_http.get("/admin/audit/export.csv?ip=nope")
    assert response.status_code == 400 and response.mimetype == "text/html"


# -- who sees what -------------------------------------------------------------------------


def test_support_reads_the_whole_log(app, log, http):
    console_sign_in(http, make_staff("support", email=STAFF))
    assert console_kinds(http, kind="signin.") == [
        "signin.failure", "signin.password", "signin.failure"]


def test_a_portal_admin_sees_only_its_portals_events(app, log, http):
    console_sign_in(http, make_staff("portal_admin", "lakeside", email=STAFF))
    # Lakeside's sign-ins (through its client) and its client change; not Hillcrest's.
    assert console_kinds(http, kind="signin.") == ["signin.password", "signin.failure"]
    assert "client.updated" in console_kinds(http)
    assert "mfa.passed" not in console_kinds(http)  # no portal named: not theirs
    page = http.get("/admin/audit")
    assert "Hillcrest" not in page.get_data(as_text=True)  # not even in the portal menu
    assert http.get("/admin/audit?portal=hillcrest").status_code == 403
    assert http.get("/admin/audit?portal=no-such-portal").status_code == 403
    export = read_csv(http.get("/admin/audit/export.csv"))
    assert {row[5] for row in export[1:]} == {"lakeside"}


# -- the API ---------------------------------------------------------------------------------


def test_the_api_lists_events_newest_first_as_documented(app, log, http):
    token = api_token(http)
    response = http.get(EVENTS_URL, query_string={"kind": "signin."},
                        headers=api_headers(token))
    assert response.status_code == 200
    assert_documented(http, response, "GET", "/audit-events")
    body = response.json
    assert body["total"] == 3 and body["next"] is None
    oldest = body["items"][-1]
    assert oldest == {
        "id": oldest["id"], "at": oldest["at"], "kind": "signin.failure",
        "actor": "anonymous", "subject": "pat@example.org", "portal": "lakeside",
        "client_id": log["client_id"], "ip": "203.0.113.7", "user_agent": "Firefox/130",
        "details": {"reason": "wrong_credentials"},
    }
    assert oldest["at"].endswith("Z")


def test_the_api_filters_like_the_console_and_pages(app, log, http):
    headers = api_headers(api_token(http))
    response = http.get(EVENTS_URL, query_string={"subject": log["pat"].sub, "per_page": 2},
                        headers=headers)
    body = response.json
    assert [item["kind"] for item in body["items"]] == ["mfa.passed", "signin.password"]
    assert body["total"] == 3 and body["next"]
    assert response.headers["Link"] == f'<{body["next"]}>; rel="next"'
    following = http.get(body["next"].removeprefix("http://localhost"), headers=headers).json
    assert [item["kind"] for item in following["items"]] == ["signin.failure"]
    assert following["next"] is None
    at = body["items"][0]["at"]
    same = http.get(EVENTS_URL, query_string={"from": at, "to": at, "kind": "mfa."},
                    headers=headers).json
    assert [item["kind"] for item in same["items"]] == ["mfa.passed"]


@pytest.mark.parametrize(("query", "field"), [
    ({"ip": "10.0.0.300"}, "ip"),
    ({"from": "soon"}, "from"),
    ({"to": "2026-02-30"}, "to"),
    ({"kind": "Signin"}, "kind"),
    ({"per_page": "500"}, "per_page"),
])
def test_the_api_names_a_wrong_filter_in_a_problem(app, http, query, field):
    response = http.get(EVENTS_URL, query_string=query, headers=api_headers(api_token(http)))
    assert response.status_code == 422
    assert_documented(http, response, "GET", "/audit-events")
    assert [error["field"] for error in response.json["errors"]] == [field]


def test_a_portals_api_client_sees_only_that_portals_events(app, log, http):
    headers = api_headers(api_token(http, portal_slug="lakeside"))
    body = http.get(EVENTS_URL, headers=headers).json
    assert {item["portal"] for item in body["items"]} == {"lakeside"}
    assert "sam@example.org" not in {item["subject"] for item in body["items"]}
    for slug in ("hillcrest", "no-such-portal"):
        response = http.get(EVENTS_URL, query_string={"portal": slug}, headers=headers)
        assert response.status_code == 403
        assert_documented(http, response, "GET", "/audit-events")


def test_the_api_needs_a_token(app, http):
    response = http.get(EVENTS_URL)
    assert response.status_code == 401
    assert_documented(http, response, "GET", "/audit-events")


# -- every security event is in the log, with who, whom, from where -------------------------

IP, AGENT = "198.51.100.23", "AuditTest/2.0 (coverage)"
NEW_PASSWORD = "tulips under a violet winter sky"


@pytest.fixture
def browser(app):
    """A person's browser at a known address with a known user agent."""
    client = app.test_client()
    client.environ_base.update(REMOTE_ADDR=IP, HTTP_USER_AGENT=AGENT)
    return client


def logged(app, kind: str, **expected) -> dict:
    """The newest `kind` event as an admin reads it from the API; it carries the browser's
    address and user agent, and whatever `expected` says."""
    reader = app.test_client()
    items = reader.get(EVENTS_URL, query_string={"kind": kind},
                       headers=api_headers(api_token(reader))).json["items"]
    found = [item for item in items
             if all(item[key] == value for key, value in expected.items())]
    assert found, f"no {kind} event with {expected} in {items}"
    event = found[0]
    assert (event["ip"], event["user_agent"]) == (IP, AGENT), event
    return event


def no_secret_in_log(*secrets: str) -> None:
    text = " ".join(str(audit.event_json(event))
                    for event in db.session.scalars(db.select(AuditEvent)))
    for secret in secrets:
        assert secret not in text


def queued_link(address: str) -> str:
    """The link in the newest email queued for `address` (as the outbox will send it)."""
    import re

    from idp.models import OutboxMessage

    message = db.session.scalars(db.select(OutboxMessage).filter_by(recipient=address)
                                 .order_by(OutboxMessage.id.desc())).first()
    assert message is not None, f"no email to {address}"
    return re.findall(r"https?://\S+", message.body_text)[0].removeprefix(
        "http://127.0.0.1:5000")


def set_password_from(browser, link: str, password: str = NEW_PASSWORD):
    from tests.driver import submit_form

    page = browser.get(link)
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    return submit_form(browser, page, password=password)


def test_sign_in_success_and_failure_are_logged(app, browser):
    from tests.driver import open_login_page, sign_in, submit_form

    pat = make_user("pat@example.org")
    rp = make_client()
    submit_form(browser, open_login_page(browser, rp.client.client_id), email=pat.email,
                password="not the password")
    logged(app, "signin.failure", actor="anonymous", subject=pat.email,
           client_id=rp.client.client_id)
    sign_in(browser, rp.client.client_id, pat.email)
    logged(app, "signin.password", actor=f"user:{pat.sub}", subject=pat.email,
           client_id=rp.client.client_id)
    no_secret_in_log("not the password", "a long enough test password")


def test_mfa_enrolment_challenge_removal_and_reset_are_logged(app, browser, clock, lakeside):
    from idp.portals import update_portal
    from tests.driver import (
        answer_mfa,
        follow_to_client,
        open_login_page,
        shown_totp_secret,
        submit_form,
        totp_code,
    )
    from tests.factories import PASSWORD, make_mfa_method

    update_portal("lakeside", {"mfa_required_from": "2000-01-01"})
    rp = make_client(portal_slug="lakeside")
    pat = make_user("pat@example.org")
    page = follow_to_client(browser, submit_form(
        browser, open_login_page(browser, rp.client.client_id), email=pat.email,
        password=PASSWORD))
    page = submit_form(browser, page, kind="totp", action="choose")
    seed = shown_totp_secret(page)
    answer_mfa(browser, page, totp_code(seed))
    logged(app, "mfa.method_added", actor=f"user:{pat.sub}", subject=pat.email,
           client_id=rp.client.client_id, portal="lakeside")
    assert logged(app, "mfa.passed", subject=pat.email)["details"] == {"method_kind": "totp"}

    # Another browser (same address) signs in: a wrong code, then the right one.
    clock.advance(30)
    other = app.test_client()
    other.environ_base.update(REMOTE_ADDR=IP, HTTP_USER_AGENT=AGENT)
    page = follow_to_client(other, submit_form(
        other, open_login_page(other, rp.client.client_id), email=pat.email,
        password=PASSWORD))
    wrong = "000000" if totp_code(seed) != "000000" else "111111"
    answer_mfa(other, page, wrong)
    failed = logged(app, "mfa.failed", actor=f"user:{pat.sub}", subject=pat.email)
    assert failed["details"] == {"method_kind": "totp", "reason": "wrong_code"}
    follow_to_client(other, answer_mfa(other, page, totp_code(seed)))
    assert len(app.test_client().get(
        EVENTS_URL, query_string={"kind": "mfa.passed"},
        headers=api_headers(api_token(app.test_client()))).json["items"]) == 2

    # Removing a method on the account page (just signed in with MFA: fresh enough).
    email_method = make_mfa_method(pat, "email")
    account = other.get("/account").get_data(as_text=True)
    from tests.html_forms import parse_forms

    form = next(f for f in parse_forms(account) if f"/methods/{email_method.id}/remove"
                in f.action)
    other.post(form.action, data=form.fields)
    logged(app, "mfa.method_removed", actor=f"user:{pat.sub}", subject=pat.email)

    # Support resets the person's MFA from the console's API (lost phone).
    support = app.test_client()
    support.environ_base.update(REMOTE_ADDR=IP, HTTP_USER_AGENT=AGENT)
    response = support.post(f"/admin/api/v1/users/{pat.sub}/reset-mfa",
                            json={"reason": "ticket 4411, lost phone"},
                            headers=api_headers(api_token(support)))
    assert response.status_code == 200, response.json
    reset = logged(app, "user.mfa_reset", subject=pat.email)
    assert reset["actor"].startswith("client:")
    no_secret_in_log(seed, wrong, totp_code(seed))


def test_password_reset_request_and_completion_are_logged(app, browser, lakeside):
    pat = make_user("pat@example.org")
    page = browser.get("/reset?portal=lakeside")
    from tests.driver import submit_form

    submit_form(browser, page, email="PAT@example.org")
    requested = logged(app, "password.reset_requested", actor="anonymous",
                       subject="pat@example.org", portal="lakeside")
    assert requested["details"] == {"outcome": "sent"}
    submit_form(browser, browser.get("/reset?portal=lakeside"), email="nobody@example.org")
    assert logged(app, "password.reset_requested", subject="nobody@example.org")[
        "details"] == {"outcome": "no_account"}

    link = queued_link(pat.email)
    set_password_from(browser, link)
    logged(app, "password.reset_completed", actor=f"user:{pat.sub}", subject=pat.email,
           portal="lakeside")
    logged(app, "password.changed", actor=f"user:{pat.sub}", subject=pat.email)
    no_secret_in_log(NEW_PASSWORD, link.rsplit("/", 1)[-1])


def test_invitations_sent_and_accepted_are_logged(app, browser, lakeside):
    response = browser.post("/admin/api/v1/portals/lakeside/invitations",
                            json={"email": "new@example.org", "name": "New Person"},
                            headers=api_headers(api_token(browser)))
    assert response.status_code == 201, response.json
    sent = logged(app, "invitation.sent", subject="new@example.org", portal="lakeside")
    assert sent["actor"].startswith("client:")
    set_password_from(browser, queued_link("new@example.org"))
    person = db.session.scalars(db.select(AuditEvent).filter_by(
        kind="invitation.accepted")).one()
    logged(app, "invitation.accepted", actor=person.actor, subject="new@example.org",
           portal="lakeside")
    no_secret_in_log(NEW_PASSWORD)


def test_legacy_migrations_and_links_are_logged(app, browser, lakeside):
    from tests.driver import submit_form
    from tests.legacy import import_rows, legacy_row

    import_rows(lakeside, legacy_row("JSmith", "pat@example.org", name="Pat Smith"),
                legacy_row("PSmith2", "pat@example.org", name="Pat Smith"))
    submit_form(browser, browser.get("/reset?portal=lakeside"), email="JSmith")
    set_password_from(browser, queued_link("pat@example.org"))
    pat = db.session.scalars(db.select(AuditEvent.actor).filter_by(
        kind="password.changed")).one()
    migrated = logged(app, "legacy.migrated", actor=pat, subject="pat@example.org",
                      portal="lakeside")
    linked = logged(app, "legacy.linked", actor=pat, subject="pat@example.org",
                    portal="lakeside")
    assert {migrated["details"]["legacy_username"], linked["details"]["legacy_username"]} == {
        "JSmith", "PSmith2"}
    no_secret_in_log(NEW_PASSWORD, "tulip42")


def test_admin_actions_are_logged(app, browser):
    staff = make_staff("admin", email=STAFF)
    console_sign_in(browser, staff)
    logged(app, "admin.signin", actor=f"admin:{STAFF}", subject=STAFF)
    pat = make_user("pat@example.org")
    response = browser.post(f"/admin/api/v1/users/{pat.sub}/disable", json={},
                            headers=api_headers(api_token(browser)))
    assert response.status_code == 200, response.json
    assert logged(app, "user.disabled", subject=pat.email)["actor"].startswith("client:")


def test_token_revocation_is_logged(app, browser):
    from tests.driver import exchange_code, sign_in

    pat = make_user("pat@example.org")
    rp = make_client()
    code = sign_in(browser, rp.client.client_id, pat.email).code
    tokens = exchange_code(browser, code, rp.client.client_id, rp.client_secret).json
    browser.post("/revoke", data={"token": tokens["refresh_token"]},
                 auth=(rp.client.client_id, rp.client_secret))
    logged(app, "token.revoked", actor=f"client:{rp.client.client_id}", subject=pat.sub,
           client_id=rp.client.client_id)
    no_secret_in_log(tokens["refresh_token"], tokens["access_token"], rp.client_secret)


def test_client_changes_are_logged(app, browser):
    headers = api_headers(api_token(browser))
    created = browser.post("/admin/api/v1/clients", headers=headers, json={
        "name": "Members app", "redirect_uris": ["https://members.example/callback"]})
    assert created.status_code == 201, created.json
    client_id = created.json["client_id"]
    logged(app, "client.created", subject=client_id)
    browser.patch(f"/admin/api/v1/clients/{client_id}", headers=headers,
                  json={"name": "Members app (new)"})
    logged(app, "client.updated", subject=client_id)
    rotated = browser.post(f"/admin/api/v1/clients/{client_id}/rotate-secret",
                           headers=headers).json
    logged(app, "client.secret_rotated", subject=client_id)
    browser.post(f"/admin/api/v1/clients/{client_id}/disable", headers=headers)
    event = logged(app, "client.disabled", subject=client_id)
    assert event["actor"].startswith("client:")
    no_secret_in_log(created.json["client_secret"], rotated["client_secret"])
