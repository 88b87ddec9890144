"""Support helps a person who lost their phone, in a real browser (issue 6).

Support signs in to the console with a password and an authenticator code, finds the
person by their contact ID, resets their two-step verification with a reason, and the
person, signing in at their portal next, is asked to set it up again.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect

from idp.db import db
from idp.models import AuditEvent, Client, Contact, Portal
from idp.notify.outbox import queue_email
from idp.portals import create_portal, update_portal
from tests.admin_fixtures import make_staff
from tests.browser.conftest import (
    DESKTOP,
    Auditor,
    LiveIdP,
    LiveRP,
    Viewport,
    new_context,
    open_sign_in,
)
from tests.factories import PASSWORD, make_mfa_method, make_user
from tests.legacy import import_rows, legacy_row

LOST_PHONE_EMAIL = "lee.lostphone@example.org"
REASON = "Lost phone, called in: ticket 4711"


def sign_in_to_console(page: Page, idp: LiveIdP, email: str, secret: str) -> None:
    """Open the console and sign in as staff do: password, then the authenticator's code."""
    page.goto(f"{idp.url}/admin/")
    page.get_by_label(re.compile(r"^Email")).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_label("Code", exact=True).fill(pyotp.TOTP(secret).now())
    page.get_by_label("No, ask me every time").check()
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Admin console")).to_be_visible()


@pytest.fixture
def portal(live_idp: LiveIdP, rp: LiveRP) -> int:
    """The RP's portal, which requires MFA since yesterday."""
    with live_idp.app.app_context():
        portal = create_portal("mls", "Lakeside MLS")
        update_portal(portal.slug, {
            "mfa_required_from": str(date.today() - timedelta(days=1)),
            "home_url": f"{rp.url}/login",
        })
        client = db.session.execute(
            db.select(Client).filter_by(client_id=rp.client_id)).scalar_one()
        client.portal_id = portal.id
        db.session.commit()
        return portal.id


def test_support_resets_the_mfa_of_a_person_who_lost_their_phone(
    page: Page, browser: Browser, viewport: Viewport, live_idp: LiveIdP, rp: LiveRP,
    portal: int, audit: Auditor, page_problems: list[str],
) -> None:
    with live_idp.app.app_context():
        person = make_user(LOST_PHONE_EMAIL, name="Lee Lostphone")
        lost_secret = make_mfa_method(person, "totp")[1]
        db.session.add(Contact(portal_id=portal, external_id="MLS-4242", user_id=person.id))
        db.session.commit()
        support = make_staff("support")
        support_email, support_secret = support.email, support.totp_secret

    # Support signs in to the console: password, then the authenticator app's code.
    sign_in_to_console(page, live_idp, support_email, support_secret)
    audit(page)

    # Finds the person by the contact ID they read out on the phone.
    page.get_by_role("navigation", name="Console").get_by_role("link", name="People").click()
    page.get_by_label("Email, name, legacy username or contact ID").fill("MLS-4242")
    page.get_by_role("button", name="Search people").click()
    expect(page.get_by_role("heading", name="1 person matching")).to_be_visible()
    audit(page)
    page.get_by_role("link", name=LOST_PHONE_EMAIL).click()
    expect(page.get_by_role("heading", name=LOST_PHONE_EMAIL, level=1)).to_be_visible()
    methods = page.get_by_role("table", name=re.compile("Verification methods"))
    expect(methods.get_by_role("rowheader", name="Authenticator app")).to_be_visible()
    portals = page.get_by_role("table", name=re.compile("portals this person belongs to"))
    expect(portals.get_by_role("rowheader", name=re.compile("Lakeside MLS"))).to_be_visible()
    assert lost_secret not in page.content()
    audit(page)

    # Resets the MFA, with the reason.
    page.get_by_label(re.compile(r"^Reason")).fill(REASON)
    page.get_by_role("button", name="Reset two-step verification").click()
    expect(page.get_by_role("status")).to_contain_text("was reset")
    expect(page.get_by_text("No verification method")).to_be_visible()
    audit(page)
    assert page_problems == []
    with live_idp.app.app_context():
        [event] = db.session.scalars(
            db.select(AuditEvent).filter_by(kind="user.mfa_reset")).all()
        assert event.actor == f"admin:{support_email}" and event.details["reason"] == REASON

    # The person signs in at the portal, in their own browser: set up two-step verification.
    context = new_context(browser, viewport)
    try:
        their_page = context.new_page()
        open_sign_in(their_page, rp, live_idp)
        their_page.get_by_label(re.compile(r"^Email")).fill(LOST_PHONE_EMAIL)
        their_page.get_by_label("Password", exact=True).fill(PASSWORD)
        their_page.get_by_role("button", name="Sign in", exact=True).click()
        expect(their_page.get_by_role("heading", name="Set up two-step verification")) \
            .to_be_visible()
        expect(their_page.get_by_label("Authenticator app")).to_be_visible()
    finally:
        context.close()


@pytest.mark.parametrize("viewport", [DESKTOP], indirect=True, ids=["desktop"])
def test_the_outbox_and_legacy_pages_work_by_their_labels(
    page: Page, live_idp: LiveIdP, portal: int, audit: Auditor, page_problems: list[str],
) -> None:
    with live_idp.app.app_context():
        failed = queue_email("gone@example.org", "mfa_reset", name="Gone")
        failed.status, failed.attempts, failed.last_error = "failed", 5, "SMTP 550"
        db.session.commit()
        import_rows(db.session.get(Portal, portal),
                    legacy_row("agent_ann", "ann@example.org", password=None))
        admin = make_staff("admin")
        admin_email, admin_secret = admin.email, admin.totp_secret
    sign_in_to_console(page, live_idp, admin_email, admin_secret)

    page.get_by_role("link", name="Outbox").first.click()
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Show messages").click()
    expect(page.get_by_role("heading", name="1 message")).to_be_visible()
    audit(page)
    page.get_by_role("button", name=re.compile("^Retry")).click()
    expect(page.get_by_role("status")).to_contain_text("queued to be sent again")

    page.get_by_role("navigation", name="Console").get_by_role(
        "link", name="Legacy accounts").click()
    audit(page)
    page.get_by_role("link", name="Lakeside MLS").click()
    expect(page.get_by_role("heading", name="Legacy accounts of Lakeside MLS")).to_be_visible()
    audit(page)
    page.get_by_role("button", name="Send invitations to 1 pending person").click()
    expect(page.get_by_role("status")).to_contain_text("1 sent")
    assert page_problems == []
