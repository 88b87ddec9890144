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
from tests.browser.conftest import (
    DESKTOP,
    PHONE,
    LiveIdP,
    LiveRP,
    Person,
    Viewport,
    claims_after,
)

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


def sign_in_with_password(page: Page, person: Person) -> None:
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def stored_credentials(authenticator: tuple[CDPSession, str]) -> list[dict[str, Any]]:
    cdp, authenticator_id = authenticator
    found = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})
    return list(found["credentials"])


def make_discoverable(authenticator: tuple[CDPSession, str], credential: dict[str, Any],
                      discoverable: bool) -> None:
    """Keep the same key (`credential`, as first read), discoverable or not.

    A non-discoverable credential is what a security key without resident keys makes: the
    browser's passkey autofill cannot offer it, so the sign-in page waits for a password.
    """
    cdp, authenticator_id = authenticator
    counts = {c["credentialId"]: c["signCount"] for c in stored_credentials(authenticator)}
    cdp.send("WebAuthn.removeCredential", {"authenticatorId": authenticator_id,
                                           "credentialId": credential["credentialId"]})
    moved = {key: credential[key] for key in ("credentialId", "rpId", "privateKey")}
    extra = {"userHandle": credential["userHandle"]} if discoverable else {}
    cdp.send("WebAuthn.addCredential", {"authenticatorId": authenticator_id, "credential": {
        **moved, **extra, "signCount": counts[credential["credentialId"]],
        "isResidentCredential": discoverable}})


def sign_out(page: Page, rp: LiveRP) -> None:
    """RP-initiated logout; the passkey and the authenticator stay."""
    page.goto(f"{rp.url}/logout")
    expect(page).to_have_url(re.compile(rf"^{re.escape(rp.url)}/signed-out"))


def enrol_passkey(page: Page, rp: LiveRP, live_idp: LiveIdP, person: Person) -> dict[str, Any]:
    """First sign-in at a portal that requires MFA: set up a passkey; the portal's claims."""
    open_portal(page, rp, live_idp)
    sign_in_with_password(page, person)
    expect(page.get_by_role("heading", name="Set up two-step verification")).to_be_visible()
    page.get_by_label("Passkey or security key").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Passkey name").fill("Work laptop")
    page.get_by_label("No, ask me every time").check()
    page.get_by_role("button", name="Create a passkey").click()
    expect(page.get_by_role("heading", name="Two-step verification is on")).to_be_visible()
    expect(page.get_by_role("list", name="Recovery codes").get_by_role("listitem")) \
        .to_have_count(10)
    return claims_after(page, rp, page.get_by_role("link", name=re.compile("saved my codes")).click)


def test_a_passkey_set_up_at_first_sign_in_is_a_second_factor_then_signs_in_alone(
    page: Page, live_idp: LiveIdP, rp: LiveRP, portal: str, person: Person,
    authenticator: tuple[CDPSession, str], page_problems: list[str],
) -> None:
    claims = enrol_passkey(page, rp, live_idp, person)
    assert claims["sub"] == person.sub
    assert claims["amr"] == ["pwd", "hwk", "mfa"] and claims["acr"] == PHISHING_RESISTANT
    [credential] = stored_credentials(authenticator)
    assert credential["isResidentCredential"] and credential["rpId"] == "localhost"
    with live_idp.app.app_context():
        user = db.session.execute(db.select(User).filter_by(email=person.email)).scalar_one()
        [method] = db.session.scalars(db.select(MfaMethod).filter_by(user_id=user.id)).all()
        assert method.kind == "webauthn" and method.label == "Work laptop"
        assert method.data["transports"] == ["internal"] and method.counter == 1

    # Signed out, then the password and the passkey as second factor. (As a non-discoverable
    # credential the passkey autofill cannot offer it, so the password form is used.)
    sign_out(page, rp)
    make_discoverable(authenticator, credential, False)
    open_portal(page, rp, live_idp)
    sign_in_with_password(page, person)
    expect(page.get_by_role("heading", name="Verify it's you")).to_be_visible()
    page.get_by_label("No, ask me every time").check()
    claims = claims_after(page, rp, page.get_by_role("button", name="Use my passkey").click)
    assert claims["amr"] == ["pwd", "hwk", "mfa"] and claims["acr"] == PHISHING_RESISTANT

    # Signed out again: the browser's passkey autofill (conditional mediation) on the Email
    # field signs in with the passkey alone. Chromium's virtual authenticator picks the
    # one discoverable credential as a person would from the autofill list.
    sign_out(page, rp)
    make_discoverable(authenticator, credential, True)
    claims = claims_after(page, rp, lambda: page.goto(f"{rp.url}/login"))
    assert claims["sub"] == person.sub
    assert claims["amr"] == ["hwk", "mfa"] and claims["acr"] == PHISHING_RESISTANT
    with live_idp.app.app_context():
        method = db.session.scalars(db.select(MfaMethod).filter_by(kind="webauthn")).one()
        assert method.counter == 3  # every assertion moved the signature counter on
    assert page_problems == []


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"],
                         indirect=True)
def test_sign_in_with_a_passkey_button(
    page: Page, live_idp: LiveIdP, rp: LiveRP, portal: str, person: Person,
    authenticator: tuple[CDPSession, str], page_problems: list[str],
) -> None:
    enrol_passkey(page, rp, live_idp, person)
    sign_out(page, rp)
    # A browser without passkey autofill: only the button offers the passkey.
    page.add_init_script("PublicKeyCredential.isConditionalMediationAvailable = "
                         "function () { return Promise.resolve(false); };")
    open_portal(page, rp, live_idp)
    expect(page.get_by_label("Email")).to_have_attribute("autocomplete", "username webauthn")
    expect(page.get_by_label("Password")).to_be_visible()
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    button = page.get_by_role("button", name="Sign in with a passkey")
    expect(button).to_be_visible()
    claims = claims_after(page, rp, button.click)
    assert claims["sub"] == person.sub
    assert claims["amr"] == ["hwk", "mfa"] and claims["acr"] == PHISHING_RESISTANT
    assert page_problems == []


def test_without_webauthn_the_passkey_button_stays_hidden_and_the_password_works(
    page: Page, live_idp: LiveIdP, rp: LiveRP, person: Person, page_problems: list[str],
) -> None:
    page.add_init_script("delete window.PublicKeyCredential;")
    open_portal(page, rp, live_idp)
    expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_hidden()
    claims = claims_after(page, rp, lambda: sign_in_with_password(page, person))
    assert claims["amr"] == ["pwd"]
    assert page_problems == []


def test_the_account_page_revokes_the_trusted_browser_and_asks_for_the_passkey_to_remove(
    page: Page, live_idp: LiveIdP, rp: LiveRP, portal: str, person: Person,
    authenticator: tuple[CDPSession, str], page_problems: list[str], clock: Any,
) -> None:
    # Set up the passkey, trusting this browser for 30 days (the preselected period).
    open_portal(page, rp, live_idp)
    sign_in_with_password(page, person)
    page.get_by_label("Passkey or security key").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Passkey name").fill("Work laptop")
    expect(page.get_by_label("Yes, for 30 days")).to_be_checked()
    page.get_by_role("button", name="Create a passkey").click()
    claims_after(page, rp, page.get_by_role("link", name=re.compile("saved my codes")).click)

    page.goto(f"{live_idp.url}/account")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    methods = page.get_by_role("list", name="Verification methods")
    expect(methods).to_contain_text("Work laptop")
    # The portal requires MFA: the only method stays.
    methods.get_by_role("button", name="Remove Work laptop").click()
    expect(page.get_by_role("alert")).to_contain_text("This is your last verification method")

    # A trusted browser is listed and revoked.
    trusted = page.get_by_role("list", name="Trusted browsers")
    expect(trusted).to_contain_text("(this browser)")
    trusted.get_by_role("button", name=re.compile("^Revoke")).click()
    expect(page.get_by_role("status")).to_contain_text("will ask for verification again")
    expect(page.get_by_role("list", name="Trusted browsers")).to_have_count(0)

    # Eleven minutes later, renaming needs a fresh second factor: the passkey gives it.
    clock.advance(11 * 60)
    page.get_by_label("New name for Work laptop").fill("Laptop")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("heading", name="Verify it's you")).to_be_visible()
    page.get_by_role("button", name="Use my passkey").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    page.get_by_label("New name for Work laptop").fill("Laptop")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("status")).to_contain_text("Renamed to “Laptop”")
    assert page_problems == []
