"""The newcomer's walk-through (README) in a real browser, against the three demo portals.

The IdP and the portals of `make run` (clients/: authlib's Flask client, nothing imported
from `idp`) are live servers on 127.0.0.1 with random ports, seeded by the same code as
`idp init --demo` (idp/demo.py). Codes and links are read from the development mailbox,
one click from every hosted page, as a newcomer would. axe-core checks every hosted page
reached (`audit`), and IDP_SCREENSHOTS=1 writes the README's screenshots.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pyotp
import pytest
from playwright.sync_api import Page, expect

from clients import members_portal, ministry_portal, mls_portal
from clients.common import PortalSettings
from idp.db import db
from idp.demo import (
    CONTACT_EMAIL,
    DEMO_EMAIL,
    DEMO_PASSWORD,
    LEGACY_EMAIL,
    LEGACY_PASSWORD,
    LEGACY_USERNAME,
    MEMBER_EMAIL,
    MEMBER_PASSWORD,
    MEMBERS,
    MINISTRY,
    MLS,
    DemoPortal,
    seed_people,
    seed_portal,
)
from idp.login.transaction import ACR_MFA, ACR_PASSWORD
from idp.models import User
from tests.browser.conftest import DESKTOP, PHONE, Auditor, LiveIdP, Viewport
from tests.factories import make_client, make_mfa_method
from tests.live import serve

NEW_PASSWORD = "lanterns over the quiet harbour"
CODE = re.compile(r"\b(\d{6})\b")
Screenshot = Callable[[Page, str], Any]


@pytest.fixture(params=[DESKTOP], ids=lambda viewport: viewport.name)
def viewport(request: pytest.FixtureRequest) -> Viewport:
    """The walk-through runs on a desktop; the legacy migration on a phone too."""
    return request.param  # type: ignore[no-any-return]


@dataclass
class Demo:
    idp: LiveIdP
    urls: dict[str, str]  # portal slug -> base URL

    @property
    def mls(self) -> str:
        return self.urls[MLS.slug]

    @property
    def members(self) -> str:
        return self.urls[MEMBERS.slug]

    @property
    def ministry(self) -> str:
        return self.urls[MINISTRY.slug]

    def sub_of(self, email: str) -> str:
        with self.idp.app.app_context():
            return db.session.execute(db.select(User.sub).filter_by(email=email)).scalar_one()


PORTAL_APPS: tuple[tuple[DemoPortal, ModuleType], ...] = (
    (MLS, mls_portal), (MEMBERS, members_portal), (MINISTRY, ministry_portal),
)


@pytest.fixture
def demo(live_idp: LiveIdP) -> Iterator[Demo]:
    """The live IdP seeded as by `idp init --demo`, and the three portals as live servers."""
    urls: dict[str, str] = {}
    with ExitStack() as stack:
        for spec, module in PORTAL_APPS:
            def build(url: str, spec: DemoPortal = spec, module: ModuleType = module) -> Any:
                with live_idp.app.app_context():
                    seed_portal(spec, url)  # its client's URIs on this random port
                return module.create_app(PortalSettings(url, live_idp.url, spec.client_id,
                                                        spec.client_secret))
            urls[spec.slug] = stack.enter_context(serve(build))
        with live_idp.app.app_context():
            seed_people()
        yield Demo(live_idp, urls)


# -- actions ---------------------------------------------------------------------------------


def at_idp(page: Page, demo: Demo) -> None:
    expect(page).to_have_url(re.compile(rf"^{re.escape(demo.idp.url)}/"))


def at_portal(page: Page, url: str, path: str = "/") -> None:
    expect(page).to_have_url(re.compile(rf"^{re.escape(url + path)}(\?.*)?$"))


def claims_shown(page: Page) -> dict[str, Any]:
    """The claims the portal page shows it received (its "Every claim" JSON)."""
    text = page.locator("#claims-json").text_content()
    assert text, "the portal shows no signed-in person"
    return json.loads(text)  # type: ignore[no-any-return]


def click_sign_in(page: Page, portal_url: str) -> None:
    page.goto(portal_url)
    page.get_by_role("banner").get_by_role("link", name="Sign in").click()


def sign_in(page: Page, login: str, password: str) -> None:
    """At the hosted sign-in page: email (or username), password, Sign in."""
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label(re.compile(r"^Email")).fill(login)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def newest_message(page: Page, to: str) -> str:
    """The text of the newest message to `to`, read in the development mailbox, which is
    one click from the hosted page `page` shows; then back to that page."""
    before = page.url
    page.get_by_role("link", name=re.compile("Development mailbox")).click()
    expect(page.get_by_role("heading", name="Development mailbox")).to_be_visible()
    page.get_by_role("listitem").filter(has_text=f"to {to}").first.get_by_role("link").click()
    body = page.locator(".message-body")
    text = body.inner_text()
    links = [a.get_attribute("href") or "" for a in body.get_by_role("link").all()]
    page.goto(before)
    return text + "\n" + "\n".join(links)


def enrol_authenticator_app(page: Page, audit: Auditor, screenshot: Screenshot | None) -> str:
    """At "Set up two-step verification": the authenticator app, its code; the secret."""
    expect(page.get_by_role("heading", name="Set up two-step verification")).to_be_visible()
    audit(page)
    page.get_by_label("Authenticator app").check()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("img", name=re.compile("QR code"))).to_be_visible()
    secret = (page.locator("code.secret").text_content() or "").replace(" ", "")
    audit(page)
    if screenshot is not None:
        screenshot(page, "walkthrough-mfa-enrol")
    page.get_by_label("Code", exact=True).fill(pyotp.TOTP(secret).now())
    page.get_by_label("No, ask me every time").check()
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Two-step verification is on")).to_be_visible()
    audit(page)
    page.get_by_role("link", name="I've saved my codes: continue").click()
    return secret


def totp_secret_for(demo: Demo, email: str) -> str:
    """Give the person an authenticator app (as if enrolled before); its secret."""
    with demo.idp.app.app_context():
        user = db.session.execute(db.select(User).filter_by(email=email)).scalar_one()
        _, secret = make_mfa_method(user, "totp")
        return str(secret)


def assert_signed_out(page: Page, url: str) -> None:
    page.goto(url)
    banner = page.get_by_role("banner")
    expect(banner.get_by_role("link", name="Sign in")).to_be_visible()
    expect(banner).not_to_contain_text("Signed in as")


# -- the walk-through ---------------------------------------------------------------------------


def test_single_sign_on_from_the_mls_portal_to_the_others_and_single_logout_across_all(
    page: Page, demo: Demo, audit: Auditor
) -> None:
    secret = totp_secret_for(demo, MEMBER_EMAIL)
    sub = demo.sub_of(MEMBER_EMAIL)

    # Lakeside MLS: saved searches are behind sign-in; password, then the code (MFA required).
    page.goto(f"{demo.mls}/searches")
    at_idp(page, demo)
    audit(page)
    sign_in(page, MEMBER_EMAIL, MEMBER_PASSWORD)
    expect(page.get_by_role("heading", name="Verify it's you")).to_be_visible()
    audit(page)
    page.get_by_role("link", name="Try another method").click()
    expect(page.get_by_role("link", name="Recovery code")).to_be_visible()
    audit(page)
    page.get_by_role("link", name="Authenticator app").click()
    page.get_by_label("Code", exact=True).fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Verify").click()
    at_portal(page, demo.mls, "/searches")
    expect(page.get_by_role("heading", name="Saved searches")).to_be_visible()
    mls = claims_shown(page)
    assert mls["sub"] == sub and mls["acr"] == ACR_MFA and "otp" in mls["amr"]

    # Members Only: single sign-on, no password page in between.
    requests_to_idp: list[str] = []
    page.on("request", lambda request: requests_to_idp.append(request.url)
            if request.url.startswith(demo.idp.url) else None)
    click_sign_in(page, demo.members)
    at_portal(page, demo.members)
    expect(page.get_by_role("heading", name="Welcome back, Morgan Lee")).to_be_visible()
    members = claims_shown(page)
    assert members["sub"] == sub and members["sid"] == mls["sid"]
    assert members["contact_id"] == "M-2001" and members["email"] == MEMBER_EMAIL
    assert not any("/login/" in url for url in requests_to_idp), requests_to_idp

    # Grace Church: the same.
    click_sign_in(page, demo.ministry)
    at_portal(page, demo.ministry)
    assert claims_shown(page)["sub"] == sub

    # Sign out at Members Only: RP-initiated logout ends the IdP session, whose back-channel
    # logout tokens end the sign-ins at the other two portals.
    page.goto(demo.members)
    page.get_by_role("button", name="Sign out").click()
    at_portal(page, demo.members, "/signed-out")
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
    for url in (demo.mls, demo.ministry, demo.members):
        assert_signed_out(page, url)
    # ... and at the IdP: the next sign-in asks for the password again.
    page.goto(f"{demo.mls}/searches")
    expect(page.get_by_label("Password", exact=True)).to_be_visible()


def test_the_mls_steps_up_a_password_session_to_mfa_by_keyboard_alone(
    page: Page, demo: Demo, audit: Auditor
) -> None:
    secret = totp_secret_for(demo, DEMO_EMAIL)

    # Members Only (MFA optional): the password is enough.
    click_sign_in(page, demo.members)
    sign_in(page, DEMO_EMAIL, DEMO_PASSWORD)
    at_portal(page, demo.members)
    members = claims_shown(page)
    assert members["acr"] == ACR_PASSWORD and members["amr"] == ["pwd"]

    # Lakeside MLS requires MFA: the session is stepped up, without the password again.
    page.goto(f"{demo.mls}/searches")
    expect(page.get_by_role("heading", name="Verify it's you")).to_be_visible()
    expect(page.get_by_label("Password", exact=True)).to_have_count(0)
    audit(page)
    code = page.get_by_label("Code", exact=True)
    expect(code).to_be_focused()
    page.keyboard.type(pyotp.TOTP(secret).now())
    page.keyboard.press("Enter")
    at_portal(page, demo.mls, "/searches")
    mls = claims_shown(page)
    assert mls["sub"] == members["sub"] and mls["acr"] == ACR_MFA
    assert "pwd" in mls["amr"] and "otp" in mls["amr"]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"], indirect=True)
def test_a_legacy_mls_username_moves_to_email_then_sets_up_mfa(
    page: Page, demo: Demo, audit: Auditor, screenshot: Screenshot
) -> None:
    page.goto(demo.mls)
    page.get_by_role("link", name="Sign in to see saved searches").click()
    at_idp(page, demo)
    expect(page.get_by_label("Email or username")).to_be_visible()  # legacy usernames here
    expect(page.get_by_role("link", name=re.compile("Development mailbox"))).to_be_visible()
    screenshot(page, "walkthrough-sign-in")
    sign_in(page, LEGACY_USERNAME, LEGACY_PASSWORD)

    # Confirm the email on file, prove it with the code from the mailbox.
    expect(page.get_by_role("heading", name="Sign in with your email from now on")).to_be_visible()
    expect(page.get_by_label("Email")).to_have_value(LEGACY_EMAIL)
    audit(page)
    screenshot(page, "walkthrough-migration")
    page.get_by_role("button", name="Send code").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    audit(page)
    match = CODE.search(newest_message(page, LEGACY_EMAIL))
    assert match, "no code in the email"
    page.get_by_label("Code", exact=True).fill(match.group(1))
    page.get_by_role("button", name="Confirm").click()

    # A password of their own; then the MLS's two-step verification.
    expect(page.get_by_role("heading", name="Choose your new password")).to_be_visible()
    audit(page)
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save password and continue").click()
    enrol_authenticator_app(page, audit, screenshot)

    at_portal(page, demo.mls, "/searches")
    claims = claims_shown(page)
    assert claims["email"] == LEGACY_EMAIL and claims["acr"] == ACR_MFA
    assert claims["preferred_username"] == LEGACY_USERNAME and claims["contact_id"] == "MLS-1042"
    expect(page.get_by_role("banner")).to_contain_text("Signed in as Jordan Smith")
    audit(page)  # the demo portal's own page too
    screenshot(page, "walkthrough-portal")


def test_a_church_contact_creates_an_account_and_a_stranger_gets_the_churchs_message(
    page: Page, demo: Demo, audit: Auditor
) -> None:
    def register(email: str, name: str) -> None:
        click_sign_in(page, demo.ministry)
        expect(page.get_by_label("Keep me signed in")).to_be_visible()
        page.get_by_role("link", name="New user? Create an account").click()
        expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
        audit(page)
        page.get_by_label("Email").fill(email)
        page.get_by_label("Name").fill(name)
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
        audit(page)
        links = [line for line in newest_message(page, email).splitlines()
                 if line.startswith(f"{demo.idp.url}/register/")]
        assert links, f"no registration link to {email}"
        page.goto(links[-1])

    # Not in the church's directory (match_only): the church's own message, no account.
    register("stranger@example.com", "Sam Stranger")
    expect(page.get_by_role("alert")).to_contain_text("Grace Church directory")
    audit(page)

    # In the directory: a password, and signed in at the portal with the contact's id.
    register(CONTACT_EMAIL, "Ruth Walker")
    expect(page.get_by_role("heading", name=re.compile("choose a password"))).to_be_visible()
    audit(page)
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save password and sign in").click()
    at_portal(page, demo.ministry)
    claims = claims_shown(page)
    assert claims["email"] == CONTACT_EMAIL and claims["contact_id"] == "MP-3001"
    assert claims["preferred_username"] == "ruth.walkerMP-3001"


# -- accessibility of the hosted pages the walk-through does not reach ---------------------------


def test_accessibility_of_reset_consent_and_logout_pages(
    page: Page, demo: Demo, axe_source: str, audit: Auditor
) -> None:
    """Password not working?, a third-party client's consent, and sign-out with and without
    an `id_token_hint` (the confirmation page and the signed-out page)."""
    click_sign_in(page, demo.members)
    page.get_by_role("link", name="Password not working?").click()
    expect(page.get_by_role("heading", name="Password not working?")).to_be_visible()
    audit(page)
    page.get_by_label("Email").fill(MEMBER_EMAIL)
    page.get_by_role("button", name="Email me a link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    audit(page)
    page.goto(demo.members)
    page.get_by_role("banner").get_by_role("link", name="Sign in").click()
    sign_in(page, MEMBER_EMAIL, MEMBER_PASSWORD)
    at_portal(page, demo.members)

    # A third-party app of the association asks for consent.
    with demo.idp.app.app_context():
        third = make_client(name="Event Tickets", first_party=False,
                            redirect_uris=[f"{demo.members}/callback"])
        client_id = third.client.client_id
    page.goto(f"{demo.idp.url}/authorize?response_type=code&scope=openid%20email"
              f"&client_id={client_id}&redirect_uri={demo.members}/callback&state=s1"
              "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGrSuNBsAE"
              "&code_challenge_method=S256&nonce=n1")
    expect(page.get_by_role("heading", name=re.compile("Allow Event Tickets"))).to_be_visible()
    audit(page)

    # Sign-out without an id_token_hint asks first; then the signed-out page.
    page.goto(f"{demo.idp.url}/logout")
    expect(page.get_by_role("heading", name="Sign out?")).to_be_visible()
    audit(page)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
    audit(page)
    assert len(audit.audited) == 5, audit.audited
    assert_signed_out(page, demo.members)


def test_keyboard_alone_reaches_every_control_of_the_sign_in_page(
    page: Page, demo: Demo
) -> None:
    """Tab goes through the fields, the checkbox, the button and both links, in order."""
    click_sign_in(page, demo.ministry)
    expect(page.get_by_label("Email")).to_be_focused()
    expected = ["Email", "Password", "Keep me signed in", "Sign in", "Password not working?",
                "New user? Create an account"]
    reached = []
    for _ in expected:
        reached.append(page.evaluate(
            """() => { const e = document.activeElement;
                       return e.labels?.[0]?.innerText.trim() || e.innerText.trim(); }"""))
        page.keyboard.press("Tab")
    assert reached == expected
