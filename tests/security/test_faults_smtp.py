"""Fault: the mail server is down when someone asks for a link.

The live IdP sends through a real SMTP server on 127.0.0.1 (aiosmtpd, tests/smtp_server.py),
stopped before the request. The outbox worker runs as in production, in its own thread
(`idp.notify.worker.start_background_worker`, what `idp serve` and `idp worker` run). The
person sees the ordinary "Check your email" page, no error; the message waits in the outbox
with its failed attempt; when the server is back, the worker's next try after the backoff
(30 s, passed with the `clock` fixture) delivers it, and its link works.

The reset is requested in a real browser (Chromium, skipped like tests/browser/ when it is
missing); the invitation, a staff action, is accepted over plain HTTP.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urljoin

import pytest
import requests
from playwright.sync_api import Browser, expect, sync_playwright

from idp.db import db
from idp.invitations import send_invitation
from idp.models import Client, Invitation, OutboxMessage, User
from idp.models.outbox import QUEUED, SENT
from idp.notify.worker import start_background_worker
from idp.portals import create_portal, update_portal
from tests.browser.conftest import (  # noqa: F401  (fixtures: live_idp, rp, person)
    CHROMIUM_ARGS,
    DESKTOP,
    REQUIRE_BROWSER,
    LiveIdP,
    LiveRP,
    Person,
    browser_required,
    claims_after,
    find_browser,
    idp_host_name,
    live_idp,
    new_context,
    open_sign_in,
    person,
    rp,
)
from tests.html_forms import parse_forms
from tests.smtp_server import SmtpServer, smtp_settings

NEW_PASSWORD = "tulips under a violet winter sky"
BACKOFF = 30  # seconds before the worker retries a failed message (idp.notify.worker)
LINK = re.compile(r"https?://\S+")
T = TypeVar("T")


@pytest.fixture
def settings_overrides(smtp_server: SmtpServer) -> dict[str, dict[str, Any]]:
    return smtp_settings(smtp_server)


@pytest.fixture
def mail_server_down(smtp_server: SmtpServer, live_idp: LiveIdP) -> Iterator[SmtpServer]:  # noqa: F811
    """The SMTP server stopped, the outbox worker running (every 0.1 s) until the test ends."""
    smtp_server.stop()
    stop = start_background_worker(live_idp.app, interval=0.1)
    yield smtp_server
    stop.set()
    time.sleep(0.2)  # let an iteration under way finish before the database goes


@pytest.fixture
def chromium() -> Iterator[Browser]:
    """Debian's Chromium for this test alone, closed with Playwright when it ends."""
    executable, missing = find_browser()
    if executable is None:
        if browser_required():
            pytest.fail(f"{missing}; {REQUIRE_BROWSER}=1 makes this a failure", pytrace=False)
        pytest.skip(missing)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 15) -> T:
    """Poll `probe` until it returns something (the worker runs on its own schedule)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def outbox_to(idp: LiveIdP, address: str) -> OutboxMessage | None:
    """The newest email to `address` in the outbox, read fresh from the database."""
    with idp.app.app_context():
        message = db.session.execute(
            db.select(OutboxMessage).filter_by(recipient=address)
            .order_by(OutboxMessage.id.desc())
        ).scalars().first()
        db.session.remove()
        return message


def assert_waiting_after_a_failed_attempt(idp: LiveIdP, smtp: SmtpServer, address: str) -> None:
    waiting = eventually(lambda: (m := outbox_to(idp, address)) and m.attempts >= 1 and m or None,
                         "the worker's first attempt")
    assert waiting.status == QUEUED and waiting.sent_at is None
    assert waiting.last_error  # the refused connection, for the admin's outbox view
    assert smtp.messages == []


def deliver_after_restart(idp: LiveIdP, smtp: SmtpServer, clock: Any, address: str) -> str:
    """Start the SMTP server, let the backoff pass; the one link of the delivered email."""
    smtp.start()
    clock.advance(BACKOFF + 1)
    received = eventually(
        lambda: [m for m in smtp.messages if m["To"] == address] or None, "the delivery")
    assert len(received) == 1
    # The worker marks the message sent just after the SMTP server has it: wait for that.
    sent = eventually(lambda: (m := outbox_to(idp, address)) and m.status == SENT and m or None,
                      "the message marked sent")
    assert sent.attempts == 2
    links = LINK.findall(smtp.text_of(received[0]))
    assert len(links) == 1, links
    return str(links[0])


def test_a_reset_asked_for_while_mail_is_down_arrives_when_it_is_back_and_its_link_works(
    chromium: Browser, live_idp: LiveIdP, rp: LiveRP, person: Person,  # noqa: F811
    mail_server_down: SmtpServer, clock: Any,
) -> None:
    context = new_context(chromium, DESKTOP)
    try:
        page = context.new_page()
        open_sign_in(page, rp, live_idp)
        page.get_by_role("link", name="Password not working?").click()
        page.get_by_label("Email").fill(person.email)
        page.get_by_role("button", name="Email me a link").click()
        # The person is told the email is on its way; the mail server's state is not theirs.
        expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
        expect(page.locator("main")).to_contain_text(person.email)
        expect(page.get_by_role("alert")).to_have_count(0)
        assert_waiting_after_a_failed_attempt(live_idp, mail_server_down, person.email)

        link = deliver_after_restart(live_idp, mail_server_down, clock, person.email)
        assert link.startswith(f"{live_idp.url}/password/")
        page.goto(link)
        expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
        page.get_by_label("New password").fill(NEW_PASSWORD)
        save = page.get_by_role("button", name="Save password and sign in")
        claims = claims_after(page, rp, save.click)
        assert claims["sub"] == person.sub and claims["email"] == person.email
    finally:
        context.close()


def test_an_invitation_sent_while_mail_is_down_arrives_when_it_is_back_and_its_link_works(
    live_idp: LiveIdP, rp: LiveRP, mail_server_down: SmtpServer, clock: Any,  # noqa: F811
) -> None:
    address = "grace.hopper@example.org"
    with live_idp.app.app_context():
        portal = create_portal("members", "Members Only")
        update_portal(portal.slug, {"home_url": f"{rp.url}/login"})
        client = db.session.execute(
            db.select(Client).filter_by(client_id=rp.client_id)).scalar_one()
        client.portal_id = portal.id
        db.session.commit()
        # The staff action succeeds: the invitation is made and its email queued.
        invitation_id = send_invitation(portal, address, name="Grace Hopper").id
        db.session.remove()
    assert_waiting_after_a_failed_attempt(live_idp, mail_server_down, address)

    link = deliver_after_restart(live_idp, mail_server_down, clock, address)
    browser = requests.Session()
    page = browser.get(link, timeout=10)
    assert page.status_code == 200 and "Choose your password" in page.text
    form = parse_forms(page.text)[0]
    # Saved -> the portal's home page -> the IdP (signed in) -> the portal's callback.
    landed = browser.post(urljoin(page.url, form.action), timeout=10,
                          data={**form.fields, "password": NEW_PASSWORD})
    assert landed.status_code == 200 and landed.url.startswith(f"{rp.url}/callback"), landed.url
    assert landed.json()["email"] == address and landed.json()["email_verified"] is True
    with live_idp.app.app_context():
        invitation = db.session.get(Invitation, invitation_id)
        assert invitation is not None and invitation.status == "accepted"
        user = db.session.execute(db.select(User).filter_by(email=address)).scalar_one()
        assert user.password_hash
        db.session.remove()
