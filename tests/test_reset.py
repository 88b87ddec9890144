"""Password not working? Self-service reset through real SMTP, the set-password page, links.

Every email here leaves through the outbox worker (`deliver_due`) to an aiosmtpd server on
127.0.0.1, and every link is taken from the email as a person would.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.account.links import issue_link
from idp.clock import utcnow
from idp.db import db
from idp.models import ActionLink, User
from idp.notify.worker import deliver_due
from idp.portals import create_portal, update_portal
from tests.conftest import ISSUER
from tests.driver import (
    answered_with_code,
    authorize,
    bearer,
    exchange_code,
    follow_to_client,
    obtain_tokens,
    open_login_page,
    pkce_pair,
    query_of,
    refresh_tokens,
    sign_in,
    submit_form,
)
from tests.factories import PASSWORD, REDIRECT_URI, make_client, make_user
from tests.html_forms import parse_forms, parse_links
from tests.smtp_server import smtp_settings
from tests.test_cli import assert_ok, assert_one_line_error, idp, query

NEW_PASSWORD = "tulips under a violet winter sky"
HOME_URL = "https://lakeside.example/members"
LINK = re.compile(r"https?://\S+")


@pytest.fixture
def settings_overrides(smtp_server):
    return smtp_settings(smtp_server)


@pytest.fixture
def portal(app):
    return create_portal("lakeside", "Lakeside MLS")


@pytest.fixture
def rp(portal):
    return make_client(portal_slug=portal.slug)


@pytest.fixture
def user(app):
    return make_user("robin.fairweather@example.org", name="Robin")


# -- actions ------------------------------------------------------------------------------


def text_of(response) -> str:
    return response.get_data(as_text=True)


def request_reset(http, email: str, **query: str):
    """Open /reset (with `query`, e.g. tx or portal) and send the form for `email`."""
    page = http.get("/reset", query_string=query)
    assert page.status_code == 200, text_of(page)
    return submit_form(http, page, email=email)


def emails_to(smtp_server, address: str) -> list:
    deliver_due()
    return [m for m in smtp_server.messages if m["To"] == address]


def emailed_link(smtp_server, address: str) -> str:
    """The link of the newest email to `address`, as the person sees it."""
    messages = emails_to(smtp_server, address)
    assert messages, f"no email to {address}"
    text = smtp_server.text_of(messages[-1])
    links = LINK.findall(text)
    assert len(links) == 1, text
    html = messages[-1].get_body(preferencelist=("html",)).get_content()
    assert links[0] in html  # the same absolute link in both parts
    return links[0]


def path_of(url: str) -> str:
    return urlsplit(url).path


def choose_password(http, link: str, password: str = NEW_PASSWORD):
    """Open the emailed link and send the set-password form."""
    page = http.get(path_of(link))
    assert page.status_code == 200, text_of(page)
    return submit_form(http, page, password=password)


def reset_by_email(http, smtp_server, user, **query: str):
    """The whole self-service reset on `http`: request, email, new password; the response."""
    request_reset(http, user.email, **query)
    return choose_password(http, emailed_link(smtp_server, user.email))


def can_sign_in(app, client_id: str, email: str, password: str) -> bool:
    """A fresh browser tries `email` / `password` at the sign-in page."""
    browser = app.test_client()
    page = open_login_page(browser, client_id)
    response = follow_to_client(browser, submit_form(browser, page, email=email,
                                                     password=password))
    return answered_with_code(response)


def is_signed_in(http, client_id: str) -> bool:
    response = follow_to_client(http, authorize(http, client_id, prompt="none"))
    return "code" in query_of(response.location)


# -- from the sign-in page back to the portal ---------------------------------------------


def test_reset_from_the_sign_in_page_ends_signed_in_at_the_portal_with_a_code(
    http, smtp_server, rp, user
):
    verifier, challenge = pkce_pair()
    page = open_login_page(http, rp.client.client_id, state="s-7", nonce="n-7",
                           code_challenge=challenge, code_challenge_method="S256")
    href = parse_links(text_of(page))["Password not working?"]
    assert "tx=" in href

    reset_page = http.get(href)
    assert "Password not working?" in text_of(reset_page)
    sent = submit_form(http, reset_page, email="  Robin.Fairweather@Example.org ")
    assert sent.status_code == 200
    assert "Check your email" in text_of(sent)
    assert "tx=" in parse_links(text_of(sent))["try again"]  # trying again keeps the sign-in

    [message] = emails_to(smtp_server, user.email)
    assert message["Subject"] == "Reset your password for Lakeside MLS"
    link = emailed_link(smtp_server, user.email)
    assert link.startswith(ISSUER + "/password/")
    assert "expires in 1 day" in smtp_server.text_of(message)

    form_page = http.get(path_of(link))
    assert "Your username is your email address" in text_of(form_page)
    assert user.email in text_of(form_page)
    response = follow_to_client(http, submit_form(http, form_page, password=NEW_PASSWORD))

    # Back at the portal with a code for the authorization request that started it all.
    assert response.status_code == 302
    assert response.location.startswith(REDIRECT_URI)
    answer = query_of(response.location)
    assert answer["state"] == "s-7" and answer["iss"] == ISSUER
    tokens = exchange_code(http, answer["code"], rp.client.client_id, rp.client_secret,
                           verifier)
    assert tokens.status_code == 200, tokens.json
    claims = jwt.decode(tokens.json["id_token"], KeySet.import_key_set(http.get("/jwks").json))
    assert claims.claims["nonce"] == "n-7"
    assert claims.claims["sub"] == user.sub
    assert claims.claims["amr"] == ["pwd"]
    # ... and signed in at the IdP: the next authorization needs no password.
    assert is_signed_in(http, rp.client.client_id)


def test_old_password_stops_working_and_the_new_one_works(app, http, smtp_server, rp, user):
    assert can_sign_in(app, rp.client.client_id, user.email, PASSWORD)
    reset_by_email(http, smtp_server, user)
    assert not can_sign_in(app, rp.client.client_id, user.email, PASSWORD)
    assert can_sign_in(app, rp.client.client_id, user.email, NEW_PASSWORD)


# -- direct /reset --------------------------------------------------------------------------


def test_direct_reset_for_a_portal_with_a_home_page_lands_there(http, smtp_server, portal, user):
    update_portal(portal.slug, {"home_url": HOME_URL})
    response = reset_by_email(http, smtp_server, user, portal=portal.slug)
    assert response.status_code == 303
    assert response.location == HOME_URL


def test_direct_reset_for_a_portal_is_branded_and_uses_its_link_lifetime(
    http, smtp_server, portal, user
):
    update_portal(portal.slug, {"reset_link_days": "3"})
    page = http.get("/reset", query_string={"portal": portal.slug})
    assert "Lakeside MLS" in text_of(page)
    submit_form(http, page, email=user.email)
    [message] = emails_to(smtp_server, user.email)
    assert message["Subject"] == "Reset your password for Lakeside MLS"
    assert "expires in 3 days" in smtp_server.text_of(message)


def test_direct_reset_without_a_portal_home_page_shows_the_password_is_saved(
    http, smtp_server, portal, user
):
    for params in ({}, {"portal": portal.slug}, {"portal": "no-such-portal"}):
        response = follow_to_client(http, reset_by_email(http, smtp_server, user, **params))
        assert response.status_code == 200
        assert "Your password is saved" in text_of(response)


# -- one answer for every email -------------------------------------------------------------


def test_known_unknown_and_disabled_emails_get_the_same_page_and_only_active_people_mail(
    http, smtp_server, rp, user
):
    disabled = make_user("dana.disabled@example.org")
    disabled.disabled_at = utcnow()
    db.session.commit()
    page = open_login_page(http, rp.client.client_id)
    tx = query_of(parse_links(text_of(page))["Password not working?"])["tx"]

    answers = {}
    for email in (user.email, "nobody.here@example.org", disabled.email):
        response = request_reset(http, email, tx=tx)
        answers[email] = (response.status_code, text_of(response).replace(email, "EMAIL"))
    assert len(set(answers.values())) == 1, answers
    assert answers[user.email][0] == 200

    deliver_due()
    assert [m["To"] for m in smtp_server.messages] == [user.email]


def test_a_link_sent_before_the_account_was_disabled_cannot_set_a_password(
    app, http, smtp_server, rp, user
):
    request_reset(http, user.email)
    link = emailed_link(smtp_server, user.email)
    page = http.get(path_of(link))
    user.disabled_at = utcnow()
    db.session.commit()
    for response in (http.get(path_of(link)),
                     submit_form(http, page, password=NEW_PASSWORD)):
        assert response.status_code == 404
        assert "This link is not valid" in text_of(response)
    assert db.session.get(User, user.id).password_changed_at is None


def test_unknown_email_gets_no_email_and_no_link(http, smtp_server):
    response = request_reset(http, "nobody.here@example.org")
    assert response.status_code == 200
    assert deliver_due() == 0
    assert smtp_server.messages == []
    assert db.session.scalars(db.select(ActionLink)).all() == []


# -- the set-password page ------------------------------------------------------------------


@pytest.mark.parametrize(("password", "reason"), [
    pytest.param("short pass", "Use at least 12 characters (this one has 10).", id="too-short"),
    pytest.param("password1234", "This password is too common", id="common"),
    pytest.param("robin.fairweather rocks", "use your email address in your password",
                 id="email-local-part"),
])
def test_refused_passwords_are_shown_with_the_reason_and_the_link_stays_usable(
    app, http, smtp_server, rp, user, password, reason
):
    request_reset(http, user.email)
    link = emailed_link(smtp_server, user.email)
    refused = choose_password(http, link, password)
    assert refused.status_code == 200
    assert "That password can't be used" in text_of(refused).replace("&#39;", "'")
    assert reason in text_of(refused).replace("&#39;", "'")
    assert can_sign_in(app, rp.client.client_id, user.email, PASSWORD)

    accepted = submit_form(http, refused, password=NEW_PASSWORD)
    assert accepted.status_code == 303
    assert can_sign_in(app, rp.client.client_id, user.email, NEW_PASSWORD)


def test_the_set_password_page_says_the_username_is_the_email(http, smtp_server, user):
    request_reset(http, user.email)
    link = emailed_link(smtp_server, user.email)
    body = text_of(http.get(path_of(link)))
    assert "Your username is your email address" in body
    assert user.email in body
    [form] = parse_forms(body)
    assert form.method == "post" and form.action == path_of(link)
    assert form.fields["csrf_token"]


# -- single use, expiry, superseded ---------------------------------------------------------


def link_problem(http, link: str):
    """The page of a link that cannot be used: its status, its text, its "new link" href."""
    response = http.get(path_of(link))
    return response.status_code, text_of(response), parse_links(text_of(response))


def test_a_link_works_once_then_explains_and_offers_a_new_one(http, smtp_server, user):
    request_reset(http, user.email)
    link = emailed_link(smtp_server, user.email)
    assert choose_password(http, link).status_code == 303

    status, body, links = link_problem(http, link)
    assert status == 410
    assert "already been used" in body
    assert "Traceback" not in body
    assert http.get(links["Send me a new link"]).status_code == 200
    # Sending the old form again does not change the password either.
    again = http.post(path_of(link), data={"password": "another password entirely"})
    assert again.status_code == 410


def test_a_link_expires_after_the_policy_days(http, smtp_server, clock, portal, user):
    update_portal(portal.slug, {"reset_link_days": "2"})
    request_reset(http, user.email, portal=portal.slug)
    link = emailed_link(smtp_server, user.email)
    clock.advance(2 * 86400 - 120)
    assert http.get(path_of(link)).status_code == 200
    clock.advance(240)
    status, body, links = link_problem(http, link)
    assert status == 410
    assert "expired" in body
    assert links["Send me a new link"].startswith("/reset")


def test_a_self_service_link_lasts_one_day_by_default(http, smtp_server, clock, user):
    request_reset(http, user.email)
    link = emailed_link(smtp_server, user.email)
    clock.advance(86400 + 60)
    status, body, _ = link_problem(http, link)
    assert status == 410 and "expired" in body


def test_a_newer_link_replaces_the_older_one(app, http, smtp_server, rp, user):
    request_reset(http, user.email)
    first = emailed_link(smtp_server, user.email)
    request_reset(http, user.email)
    second = emailed_link(smtp_server, user.email)
    assert first != second

    status, body, links = link_problem(http, first)
    assert status == 410
    assert "replaced" in body
    assert "Send me a new link" in links
    assert choose_password(http, second).status_code == 303
    assert can_sign_in(app, rp.client.client_id, user.email, NEW_PASSWORD)


def test_the_new_link_page_keeps_the_portal(http, smtp_server, portal, user):
    request_reset(http, user.email, portal=portal.slug)
    link = emailed_link(smtp_server, user.email)
    choose_password(http, link)
    _, body, links = link_problem(http, link)
    assert "Lakeside MLS" in body
    assert query_of(links["Send me a new link"]).get("portal") == portal.slug


@pytest.mark.parametrize("token", [
    "garbage",
    "x" * 300,
    "x" * 5000,
    "%00",
    "%C3%BC-not-a-token",
    "..%2F..%2Fetc",
])
def test_bad_tokens_get_the_link_problem_page(http, token):
    for response in (http.get(f"/password/{token}"), http.post(f"/password/{token}", data={})):
        body = text_of(response)
        assert response.status_code == 404, body
        assert "This link is not valid" in body
        assert "Send me a new link" in parse_links(body)
        assert "Traceback" not in body


def test_a_link_of_another_purpose_is_not_a_set_password_link(http, user):
    _, token = issue_link("register", user.email, 1, data={"name": "Robin"})
    db.session.commit()
    response = http.get(f"/password/{token}")
    assert response.status_code == 404
    assert "This link is not valid" in text_of(response)


# -- a password change ends the rest --------------------------------------------------------


def test_a_password_change_ends_other_sessions_and_their_tokens(app, http, smtp_server, rp, user):
    other_browser = app.test_client()
    tokens = obtain_tokens(other_browser, rp.client.client_id, user.email, rp.client_secret)
    assert other_browser.get("/userinfo", headers=bearer(tokens["access_token"])).status_code \
        == 200
    assert is_signed_in(other_browser, rp.client.client_id)

    reset_by_email(http, smtp_server, user)

    assert not is_signed_in(other_browser, rp.client.client_id)
    assert other_browser.get("/userinfo", headers=bearer(tokens["access_token"])).status_code \
        == 401
    refreshed = refresh_tokens(other_browser, tokens["refresh_token"], rp.client.client_id,
                               rp.client_secret)
    assert refreshed.status_code == 400
    assert refreshed.json["error"] == "invalid_grant"
    # The browser that reset the password is the one signed in now.
    assert is_signed_in(http, rp.client.client_id)


def test_a_password_change_voids_other_outstanding_links(http, smtp_server, user):
    _, other_token = issue_link("invitation", user.email, 7, user=user)
    db.session.commit()
    reset_by_email(http, smtp_server, user)
    response = http.get(f"/password/{other_token}")
    assert response.status_code == 410
    assert "replaced" in text_of(response)


def test_a_sign_in_on_this_browser_is_kept_when_its_own_password_changes(
    http, smtp_server, rp, user
):
    sign_in(http, rp.client.client_id, user.email)
    reset_by_email(http, smtp_server, user)
    assert is_signed_in(http, rp.client.client_id)


# -- CSRF -------------------------------------------------------------------------------------


def test_the_reset_form_needs_its_csrf_token(http, smtp_server, user):
    page = http.get("/reset")
    form = parse_forms(text_of(page))[0]
    fields = {**form.fields, "email": user.email}
    for sent in ({k: v for k, v in fields.items() if k != "csrf_token"},
                 {**fields, "csrf_token": "forged"}):
        response = http.post("/reset", data=sent)
        assert response.status_code == 400
        assert "Please try again" in text_of(response)
    assert deliver_due() == 0
    assert smtp_server.messages == []


def test_the_set_password_form_needs_its_csrf_token(app, http, smtp_server, rp, user):
    request_reset(http, user.email)
    link = emailed_link(smtp_server, user.email)
    for sent in ({"password": NEW_PASSWORD}, {"password": NEW_PASSWORD, "csrf_token": "forged"}):
        response = http.post(path_of(link), data=sent)
        assert response.status_code == 400
    # A request from another site (another browser's session) is refused too.
    page = http.get(path_of(link))
    token = parse_forms(text_of(page))[0].fields["csrf_token"]
    elsewhere = app.test_client()
    assert elsewhere.post(path_of(link), data={"password": NEW_PASSWORD,
                                               "csrf_token": token}).status_code == 400
    assert can_sign_in(app, rp.client.client_id, user.email, PASSWORD)
    assert choose_password(http, link).status_code == 303


# -- staff: idp users send-reset --------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    instance = tmp_path_factory.mktemp("reset-cli") / "instance"
    assert_ok(idp(instance, "init"))
    assert_ok(idp(instance, "portals", "create", "--slug", "lakeside", "--name", "Lakeside MLS"))
    assert_ok(idp(instance, "portals", "set", "lakeside", f"home_url={HOME_URL}",
                  "reset_link_days=2"))
    assert_ok(idp(instance, "users", "create", "--email", "pat@example.org",
                  "--password", "a password staff never sees", "--name", "Pat"))
    return instance


@pytest.fixture
def cli_instance(tmp_path: Path, cli_template: Path) -> Path:
    copy = tmp_path / "instance"
    shutil.copytree(cli_template, copy)
    return copy


def test_staff_send_a_reset_email_from_the_command_line(cli_instance, smtp_server):
    result = idp(cli_instance, "users", "send-reset", "--email", "Pat@Example.org",
                 "--portal", "lakeside")
    assert_ok(result)
    assert "pat@example.org" in result.stdout
    links = query(cli_instance, "SELECT purpose, portal_id IS NOT NULL, used_at FROM action_links")
    assert links == [("reset", 1, None)]

    smtp = {"IDP_MAIL__BACKEND": "smtp", "IDP_MAIL__SMTP_HOST": "127.0.0.1",
            "IDP_MAIL__SMTP_PORT": str(smtp_server.port)}
    assert_ok(idp(cli_instance, "worker", "--once", **smtp))
    [message] = smtp_server.messages
    assert message["To"] == "pat@example.org"
    assert message["Subject"] == "Reset your password for Lakeside MLS"
    text = smtp_server.text_of(message)
    assert "expires in 2 days" in text
    [link] = LINK.findall(text)
    assert re.match(r"^https?://[^/]+/password/[A-Za-z0-9_-]{20,}$", link), link
    assert "a password staff never sees" not in text


@pytest.mark.parametrize(("args", "sql", "fragment"), [
    pytest.param(["--email", "nobody@example.org"], None, "no person with email",
                 id="unknown-person"),
    pytest.param(["--email", "pat@example.org", "--portal", "nowhere"], None,
                 "no portal with slug", id="unknown-portal"),
    pytest.param(["--email", "jsmith"], "UPDATE users SET email = 'jsmith'",
                 "no usable email", id="agent-username-not-an-email"),
    pytest.param(["--email", "pat@example.org"], "UPDATE users SET disabled_at = '2026-01-01'",
                 "disabled", id="disabled-person"),
])
def test_send_reset_refuses_with_one_line(cli_instance, args, sql, fragment):
    if sql:
        import sqlite3

        with sqlite3.connect(cli_instance / "idp.sqlite3") as connection:
            connection.execute(sql)
        connection.close()
    assert_one_line_error(idp(cli_instance, "users", "send-reset", *args), fragment)
    assert query(cli_instance, "SELECT count(*) FROM outbox_messages") == [(0,)]
    assert query(cli_instance, "SELECT count(*) FROM action_links") == [(0,)]


def test_a_staff_sent_link_lands_at_the_portal_home_page(http, smtp_server, portal, user):
    from idp.account.reset import send_reset_email

    update_portal(portal.slug, {"home_url": HOME_URL})
    send_reset_email(user, portal)
    db.session.commit()
    response = choose_password(http, emailed_link(smtp_server, user.email))
    assert response.status_code == 303 and response.location == HOME_URL
    assert db.session.get(User, user.id).password_changed_at is not None


def test_a_password_change_revokes_even_offline_access_tokens(app, http, smtp_server):
    from tests.driver import exchange_code, sign_in

    user = make_user()
    rp = make_client()
    code = sign_in(http, rp.client.client_id, user.email, scope="openid offline_access").code
    offline = exchange_code(http, code, rp.client.client_id, rp.client_secret).json
    from idp.account.completion import set_new_password

    set_new_password(user, app.extensions["idp"].passwords.hash("a brand new long passphrase"))
    response = http.get("/userinfo", headers={"Authorization": f"Bearer {offline['access_token']}"})
    assert response.status_code == 401
    refreshed = http.post("/token", data={"grant_type": "refresh_token",
                                          "refresh_token": offline["refresh_token"]},
                          auth=(rp.client.client_id, rp.client_secret))
    assert refreshed.status_code == 400 and refreshed.json["error"] == "invalid_grant"
