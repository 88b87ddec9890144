"""Keep me signed in, Password not working?, an invitation, the set-password page's script:
in a real browser, on a desktop and on a phone.

The live IdP sends its mail through a real SMTP server on 127.0.0.1 (aiosmtpd); the
outbox is delivered with the worker's own `deliver_due`, and every link is taken from an
email as a person would.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from idp.account.links import issue_link, link_url
from idp.db import db
from idp.invitations import send_invitation
from idp.models import Client, Invitation, Portal, User
from idp.portals import create_portal, update_portal
from tests.browser.conftest import (
    LiveIdP,
    LiveRP,
    Mailbox,
    Person,
    Viewport,
    claims_after,
    new_context,
    open_sign_in,
)
from tests.smtp_server import SmtpServer, smtp_settings

NEW_PASSWORD = "tulips under a violet winter sky"
COMMON_PASSWORD = "password1234"  # long enough, but on the list of leaked passwords
KEEP_SIGNED_IN_DAYS = 90  # the default policy's maximum, and the cookie's lifetime
DAY = 24 * 60 * 60


@pytest.fixture
def settings_overrides(smtp_server: SmtpServer) -> dict[str, dict[str, Any]]:
    return smtp_settings(smtp_server)


@pytest.fixture
def portal(live_idp: LiveIdP, rp: LiveRP) -> str:
    """The portal behind the RP's client; its home page is the RP's /login."""
    with live_idp.app.app_context():
        portal = create_portal("members", "Members Only")
        update_portal(portal.slug, {"home_url": f"{rp.url}/login"})
        client = db.session.execute(
            db.select(Client).filter_by(client_id=rp.client_id)
        ).scalar_one()
        client.portal_id = portal.id
        db.session.commit()
        return portal.slug


def sign_in(page: Page, rp: LiveRP, email: str, password: str) -> dict[str, Any]:
    """At the sign-in page the RP sent `page` to: email, password, Sign in; the claims."""
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    return claims_after(page, rp, page.get_by_role("button", name="Sign in").click)


def idp_cookie(page: Page, idp: LiveIdP) -> dict[str, Any]:
    name = idp.app.config["SESSION_COOKIE_NAME"]
    [cookie] = [c for c in page.context.cookies(idp.url) if c["name"] == name]
    return dict(cookie)


def assert_signed_in(claims: dict[str, Any], idp: LiveIdP, email: str, name: str) -> None:
    with idp.app.app_context():
        user = db.session.execute(db.select(User).filter_by(email=email)).scalar_one()
        sub = user.sub
    assert claims["sub"] == sub and claims["email"] == email and claims["name"] == name
    assert claims["iss"] == idp.url and claims["amr"] == ["pwd"]


# -- Keep me signed in ----------------------------------------------------------------------


@pytest.mark.parametrize("keep", [True, False], ids=["kept", "not-kept"])
def test_keep_me_signed_in_makes_the_session_outlive_the_browser(
    page: Page, browser: Browser, viewport: Viewport, live_idp: LiveIdP, rp: LiveRP,
    person: Person, keep: bool,
) -> None:
    open_sign_in(page, rp, live_idp)
    if keep:
        page.get_by_label("Keep me signed in").check()
    claims = sign_in(page, rp, person.email, person.password)
    assert claims["sub"] == person.sub

    cookie = idp_cookie(page, live_idp)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    if keep:  # a persistent cookie, for the policy's maximum
        expected = time.time() + KEEP_SIGNED_IN_DAYS * DAY
        assert abs(cookie["expires"] - expected) < 120, cookie
    else:  # a session cookie: it ends with the browser
        assert cookie["expires"] == -1, cookie

    # A new tab of the same browser: single sign-on, no password asked.
    context = page.context
    page.close()
    tab = context.new_page()
    claims = claims_after(tab, rp, lambda: tab.goto(f"{rp.url}/login"))
    assert claims["sub"] == person.sub and claims["email"] == person.email

    # The browser restarts: only persistent cookies survive (the portal's own session
    # cookie is a session cookie, so the portal asks the IdP again).
    state = context.storage_state()
    survivors = [c for c in state["cookies"] if c["expires"] > 0]
    restarted = new_context(browser, viewport, storage_state={**state, "cookies": survivors})
    try:
        again = restarted.new_page()
        if keep:
            claims = claims_after(again, rp, lambda: again.goto(f"{rp.url}/login"))
            assert claims["sub"] == person.sub
        else:
            open_sign_in(again, rp, live_idp)  # signed out: the sign-in page again
    finally:
        restarted.close()


# -- Password not working? ----------------------------------------------------------------


def test_password_not_working_resets_by_email_and_lands_signed_in_at_the_portal(
    page: Page, browser: Browser, viewport: Viewport, live_idp: LiveIdP, rp: LiveRP,
    person: Person, mailbox: Mailbox, screenshot: Any, page_problems: list[str],
) -> None:
    open_sign_in(page, rp, live_idp)
    page.get_by_role("link", name="Password not working?").click()
    expect(page.get_by_role("heading", name="Password not working?")).to_be_visible()
    email = page.get_by_label("Email")
    expect(email).to_be_focused()
    screenshot(page, "reset")
    email.fill(person.email)
    page.get_by_role("button", name="Email me a link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    expect(page.locator("main")).to_contain_text(person.email)

    link = mailbox.link_to(person.email)
    assert link.startswith(f"{live_idp.url}/password/")
    page.goto(link)
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    expect(page.locator("main")).to_contain_text(f"Your username is your email address: "
                                                 f"{person.email}")
    new_password = page.get_by_label("New password")
    save = page.get_by_role("button", name="Save password and sign in")

    # A common password is refused, and the page says why.
    new_password.fill(COMMON_PASSWORD)
    save.click()
    expect(page.get_by_role("alert")).to_contain_text("This password is too common")
    expect(new_password).to_have_value("")  # never echoed back
    expect(new_password).to_have_accessible_description(re.compile("too common"))
    assert "claims" not in rp.record

    new_password.fill(NEW_PASSWORD)
    expect(page.locator(".strength")).to_contain_text("Strong")
    screenshot(page, "set-password")
    claims = claims_after(page, rp, save.click)
    assert_signed_in(claims, live_idp, person.email, person.name)
    assert page_problems == []

    # In another browser the old password no longer works; the new one does.
    other = new_context(browser, viewport)
    try:
        fresh = other.new_page()
        open_sign_in(fresh, rp, live_idp)
        fresh.get_by_label("Email").fill(person.email)
        fresh.get_by_label("Password").fill(person.password)
        fresh.get_by_role("button", name="Sign in").click()
        expect(fresh.get_by_role("alert")).to_contain_text("don't match an account")
        fresh.get_by_label("Password").fill(NEW_PASSWORD)
        claims = claims_after(fresh, rp, fresh.get_by_role("button", name="Sign in").click)
        assert claims["sub"] == person.sub
    finally:
        other.close()


# -- an invitation ---------------------------------------------------------------------------


def test_an_invited_person_sets_a_password_and_lands_signed_in_at_the_portal(
    page: Page, live_idp: LiveIdP, rp: LiveRP, portal: str, mailbox: Mailbox,
    page_problems: list[str],
) -> None:
    address, name = "grace.hopper@example.org", "Grace Hopper"
    with live_idp.app.app_context():
        members = db.session.execute(db.select(Portal).filter_by(slug=portal)).scalar_one()
        invitation_id = send_invitation(members, address, name=name).id

    link = mailbox.link_to(address)
    assert link.startswith(f"{live_idp.url}/password/")
    page.goto(link)
    expect(page.get_by_role("heading", name="Welcome! Choose your password")).to_be_visible()
    expect(page.get_by_text("Members Only")).to_be_visible()  # the portal's own page
    expect(page.locator("main")).to_contain_text(address)
    page.get_by_label("New password").fill(NEW_PASSWORD)

    # Saved -> the portal's home page (its /login) -> the IdP, signed in -> the portal.
    save = page.get_by_role("button", name="Save password and sign in")
    claims = claims_after(page, rp, save.click)
    assert_signed_in(claims, live_idp, address, name)
    assert claims["email_verified"] is True
    assert page_problems == []
    with live_idp.app.app_context():
        invitation = db.session.get(Invitation, invitation_id)
        assert invitation is not None and invitation.status == "accepted"


# -- the set-password page's script ----------------------------------------------------------


def test_strength_meter_and_show_password_work_under_the_strict_csp(
    page: Page, live_idp: LiveIdP, person: Person, page_problems: list[str]
) -> None:
    with live_idp.app.app_context():
        user = db.session.execute(db.select(User).filter_by(email=person.email)).scalar_one()
        _, token = issue_link("reset", user.email, 1, user=user)
        db.session.commit()
        url = link_url("account.set_password", token)
    response = page.goto(url)
    assert response is not None and response.ok
    # Scripts only from the IdP's own files: no inline script, no eval.
    directives = {name: sources for name, *sources in
                  (part.split() for part in response.headers["content-security-policy"].split(";")
                   if part.strip())}
    assert directives.get("script-src", directives["default-src"]) == ["'self'"], directives
    assert page.locator("script:not([src])").count() == 0

    field = page.get_by_label("New password")
    strength = page.locator(".strength")
    meter = page.get_by_role("meter", name="Password strength")
    expect(strength).to_be_hidden()  # nothing typed, nothing to judge

    values = []
    for typed, label in (("tulips", "Weak"), (" under a violet", None),
                         (" winter sky", "Strong")):
        field.press_sequentially(typed)
        expect(strength).to_be_visible()
        if label is not None:
            expect(strength).to_contain_text(label)
        values.append(meter.evaluate("meter => meter.value"))
    assert values[0] == 1 and values[-1] == 4 and values == sorted(values), values

    field.fill("")
    expect(strength).to_be_hidden()

    show = page.get_by_label("Show password")
    expect(field).to_have_attribute("type", "password")
    show.check()
    expect(field).to_have_attribute("type", "text")
    show.uncheck()
    expect(field).to_have_attribute("type", "password")
    assert page_problems == []
