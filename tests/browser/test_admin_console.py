"""An administrator registers a client in the console, in a real browser (issue 6).

The admin signs in with a password and an authenticator code, registers a portal's
application, copies its secret from the page that shows it once, and that application
then signs a person in (authorization code with PKCE, authlib's Flask client, live) and
gets a client-credentials token from the live IdP. On the way, axe-core checks the client
form (with an error), the secret page, the client's page and the portal's policy page.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import requests
from playwright.sync_api import Browser, Page, expect

from idp.portals import create_portal
from tests.admin_fixtures import make_staff
from tests.browser.conftest import (
    Auditor,
    LiveIdP,
    LiveRP,
    Person,
    Viewport,
    claims_after,
    new_context,
)
from tests.browser.test_admin_people import sign_in_to_console
from tests.live import serve
from tests.relying_party import create_relying_party


class LaterApp:
    """A WSGI app given after the server is up: the RP's URL is needed to register it."""

    app: Callable[..., Any] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None, "the relying party is not registered yet"
        return self.app(environ, start_response)


def test_an_admin_registers_a_client_that_then_signs_people_in(
    page: Page, browser: Browser, viewport: Viewport, live_idp: LiveIdP, person: Person,
    audit: Auditor, page_problems: list[str],
) -> None:
    with live_idp.app.app_context():
        create_portal("members", "Members Only")
        admin = make_staff("admin")
        admin_email, admin_secret = admin.email, admin.totp_secret
    later = LaterApp()
    with serve(lambda url: later) as rp_url:
        sign_in_to_console(page, live_idp, admin_email, admin_secret)
        page.get_by_role("navigation", name="Console").get_by_role("link", name="Clients") \
            .click()
        page.get_by_role("link", name="Register a client").click()
        expect(page.get_by_role("heading", name="Register a client")).to_be_visible()
        audit(page)

        # A typo first: the error is shown beside the field, and what was typed stays.
        page.get_by_label("Name", exact=True).fill("Members app")
        page.get_by_label("Portal", exact=True).select_option("members")
        page.get_by_label("Redirect URIs", exact=True).fill(
            f"{rp_url}/callback#signed-in")
        page.get_by_role("button", name="Register client").click()
        expect(page.get_by_role("alert")).to_contain_text("fragment")
        expect(page.get_by_label("Name", exact=True)).to_have_value("Members app")
        audit(page)

        page.get_by_label("Redirect URIs", exact=True).fill(f"{rp_url}/callback")
        page.get_by_label(re.compile(r"Service access")).check()
        page.get_by_label("First-party application").check()
        page.get_by_role("button", name="Register client").click()

        # The secret, once.
        expect(page.get_by_role("heading", name="The secret of Members app")).to_be_visible()
        client_id = page.locator("#client-id").inner_text().strip()
        secret = page.locator("#client-secret").inner_text().strip()
        assert len(secret) >= 40
        audit(page)
        page.reload()
        expect(page.get_by_role("heading", name="This secret is no longer shown")) \
            .to_be_visible()
        assert secret not in page.content()
        page.get_by_role("link", name="Back to Members app").click()
        expect(page.get_by_role("heading", name="Members app", level=1)).to_be_visible()
        assert secret not in page.content()
        audit(page)

        # The portal's page lists the new client; its policy page explains each setting.
        page.get_by_role("navigation", name="Console").get_by_role("link", name="Portals") \
            .click()
        page.get_by_role("link", name="Members Only").click()
        expect(page.get_by_role("link", name="Members app")).to_be_visible()
        audit(page)
        page.get_by_role("link", name="Edit branding and login policy").click()
        expect(page.get_by_label("MFA required from")).to_have_accessible_description(
            re.compile("everyone signing in to this portal must use a second factor"))
        audit(page)
        # Chromium logs the 422 (the typo) and the 410 (the reload) as console errors.
        expected = ("status of 422", "status of 410")
        assert [p for p in page_problems if not any(e in p for e in expected)] == []

        # The application works: a person signs in through it, in their own browser...
        rp, record = create_relying_party(rp_url, live_idp.url, client_id, secret)
        later.app = rp
        context = new_context(browser, viewport)
        try:
            their_page = context.new_page()
            their_page.goto(f"{rp_url}/login")
            their_page.get_by_label(re.compile(r"^Email")).fill(person.email)
            their_page.get_by_label("Password", exact=True).fill(person.password)
            claims = claims_after(their_page, LiveRP(rp_url, record, client_id),
                                  their_page.get_by_role("button", name="Sign in",
                                                         exact=True).click)
        finally:
            context.close()
        assert claims["sub"] == person.sub and claims["aud"] in (client_id, [client_id])
        assert record["token"]["access_token"]

    # ...and it gets a token for itself with the secret it was shown.
    response = requests.post(f"{live_idp.url}/token", data={"grant_type": "client_credentials"},
                             auth=(client_id, secret), timeout=10)
    assert response.status_code == 200 and response.json()["token_type"] == "Bearer"
