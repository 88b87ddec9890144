"""Passkeys in a real browser: Chromium's virtual authenticator (CDP `WebAuthn` domain) stands
in for a phone's or laptop's platform authenticator with user verification.

The live IdP is at http://localhost:<port> (browsers refuse an IP address as RP ID).
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from playwright.sync_api import CDPSession, Page, expect

from idp.db import db
from idp.models import Client, MfaMethod, User
from idp.portals import create_portal, update_portal
from tests.browser.conftest import DESKTOP, LiveIdP, LiveRP, Person, Viewport, claims_after

PHISHING_RESISTANT = "urn:portal-idp:acr:phishing-resistant"


@pytest.fixture
def idp_host_name() -> str:
    return "localhost"


@pytest.fixture(params=[DESKTOP], ids=lambda viewport: viewport.name)
def viewport(request: pytest.FixtureRequest) -> Viewport:
    """WebAuthn does not depend on the screen: the desktop is enough here."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def portal(live_idp: LiveIdP, rp: LiveRP) -> str:
    """The RP's portal, which requires MFA since yesterday."""
    with live_idp.app.app_context():
        portal = create_portal("mls", "Lakeside MLS")
        update_portal(portal.slug, {
            "mfa_required_from": str(date.today() - timedelta(days=1)),
            "home_url": f"{rp.url}/login",
        })
        client = db.session.execute(
            db.select(Client).filter_by(client_id=rp.client_id)
        ).scalar_one()
        client.portal_id = portal.id
        db.session.commit()
        return portal.slug


@pytest.fixture
def authenticator(page: Page) -> tuple[CDPSession, str]:
    """A platform authenticator with discoverable credentials and user verification."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
        "automaticPresenceSimulation": True,
    }})
    return cdp, str(added["authenticatorId"])


def open_portal(page: Page, rp: LiveRP, idp: LiveIdP) -> None:
    page.goto(f"{rp.url}/login")
    expect(page).to_have_url(re.compile(rf"^{re.escape(idp.url)}/login/"))


def test_probe(page: Page, live_idp: LiveIdP, rp: LiveRP, portal: str, person: Person,
               authenticator: tuple[CDPSession, str], page_problems: list[str]) -> None:
    open_portal(page, rp, live_idp)
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Set up two-step verification")).to_be_visible()
    page.get_by_label("Passkey or security key").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Passkey name").fill("Work laptop")
    page.get_by_label("No, ask me every time").check()
    page.get_by_role("button", name="Create a passkey").click()
    expect(page.get_by_role("heading", name="Two-step verification is on")).to_be_visible()
    claims = claims_after(page, rp, page.get_by_role("link", name=re.compile("I've saved")).click)
    print(claims)
    cdp, auth_id = authenticator
    print(cdp.send("WebAuthn.getCredentials", {"authenticatorId": auth_id}))
    page.goto(f"{rp.url}/logout")
    page.wait_for_timeout(500)
    print(page.url)
    page.goto(f"{rp.url}/login")
    page.wait_for_timeout(2000)
    print(page.url, page_problems)
    with live_idp.app.app_context():
        user = db.session.execute(db.select(User).filter_by(email=person.email)).scalar_one()
        print(db.session.scalars(db.select(MfaMethod).filter_by(user_id=user.id)).all())
    _: Any = None
