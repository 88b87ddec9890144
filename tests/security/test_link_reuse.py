"""Links and codes work once: a reset, invitation or registration link, the code that proves
a legacy account's new email, and every second-factor code.

An attacker who later reads the mailbox, the browser history or a shoulder-surfed code
gets nothing from what was already used.
"""

from __future__ import annotations

import secrets

import pytest

from idp.db import db
from idp.invitations import send_invitation
from idp.portals import find_portal
from tests.driver import follow_to_client, totp_code
from tests.legacy import LEGACY_PASSWORD
from tests.security.conftest import (
    LiveClient,
    LiveIdP,
    LiveResponse,
    Person,
    add_legacy_account,
    add_legacy_portal,
    add_method,
    after_password,
    form_of,
    login_page,
    mfa_page,
    open_page,
    submit,
)

FIRST, SECOND = "the first new password", "an attacker's later password"


def signs_in(idp: LiveIdP, email: str, password: str) -> bool:
    browser = idp.client()
    answer = submit(browser, login_page(idp, browser), email=email, password=password)
    return answer.status_code == 303


def use_link_twice(idp: LiveIdP, link: str) -> tuple[LiveResponse, LiveResponse, LiveResponse]:
    """Choose a password from `link`; then open it again, and post it again (each from a
    browser of its own, as from a copied link)."""
    browser = idp.client()
    page = browser.get(link)
    assert page.status_code == 200
    used = submit(browser, page, password=FIRST)
    replay = idp.client()
    reopened = replay.get(link)
    reposted = replay.post(link, data={"password": SECOND,
                                       "csrf_token": page_token(replay)})
    return used, reopened, reposted


def page_token(browser: LiveClient) -> str:
    """A valid CSRF token of `browser`'s session (so only the link decides)."""
    return form_of(browser.get("/reset"), "/reset").fields["csrf_token"]


def test_a_reset_link_works_once(idp: LiveIdP) -> None:
    person = idp.make_person(totp=False)
    requester = idp.client()
    submit(requester, open_page(requester, "/reset", portal=idp.portal_slug), email=person.email)
    used, reopened, reposted = use_link_twice(idp, idp.link_sent_to(person.email))
    assert used.status_code == 303
    assert reopened.status_code == 410 and 'name="password"' not in reopened.text
    assert reposted.status_code == 410
    assert signs_in(idp, person.email, FIRST) and not signs_in(idp, person.email, SECOND)


def test_an_invitation_link_works_once(idp: LiveIdP) -> None:
    email = f"invited{secrets.randbelow(10**6)}@example.org"
    with idp.context():
        portal = find_portal(idp.portal_slug)
        assert portal is not None
        send_invitation(portal, email, name="Invited Person")
        db.session.remove()
    used, reopened, reposted = use_link_twice(idp, idp.link_sent_to(email))
    assert used.status_code == 303
    assert reopened.status_code == 410 and reposted.status_code == 410
    assert signs_in(idp, email, FIRST) and not signs_in(idp, email, SECOND)


def test_a_registration_link_works_once(idp: LiveIdP) -> None:
    email = f"registrant{secrets.randbelow(10**6)}@example.org"
    requester = idp.client()
    submit(requester, open_page(requester, "/register", portal=idp.portal_slug),
           email=email, name="Registrant")
    used, reopened, reposted = use_link_twice(idp, idp.link_sent_to(email, "/register/"))
    assert used.status_code == 303
    assert reopened.status_code == 410 and reposted.status_code == 410
    assert signs_in(idp, email, FIRST) and not signs_in(idp, email, SECOND)


def test_the_email_verification_code_of_a_legacy_account_works_once(idp: LiveIdP) -> None:
    """The code that proved the new email in one sign-in proves nothing in another."""
    legacy = add_legacy_portal(idp)
    add_legacy_account(idp, "agent_moves", "agent.moves@example.org")

    def confirm_email(browser: LiveClient) -> LiveResponse:
        page = after_password(browser, login_page(idp, browser, legacy.client_id),
                              Person("agent_moves", "", LEGACY_PASSWORD))
        assert 'value="migrate_legacy"' in page.text
        page = follow_to_client(browser, submit(browser, page, email="agent.moves@example.org"))
        assert 'value="verify_email"' in page.text
        return page

    first = idp.client()
    page = confirm_email(first)
    code = idp.code_sent_to("agent.moves@example.org")
    proven = follow_to_client(first, submit(first, page, code=code, action="verify"))
    assert 'value="set_password"' in proven.text

    second = idp.client()
    page = confirm_email(second)
    replayed = follow_to_client(second, submit(second, page, code=code, action="verify"))
    assert 'value="verify_email"' in replayed.text and 'role="alert"' in replayed.text
    assert 'value="set_password"' not in replayed.text


@pytest.mark.parametrize("kind", ["totp", "email", "sms"])
def test_a_second_factor_code_works_once(idp: LiveIdP, kind: str) -> None:
    """The code that passed one sign-in is refused in the next one (RFC 6238 5.2 for the
    authenticator app; single use for codes by email and text message)."""
    person = idp.make_person(totp=kind == "totp")
    destination = person.email if kind == "email" else f"+1203555{secrets.randbelow(10**4):04d}"
    if kind != "totp":
        add_method(idp, person, kind, destination)

    browser, page = mfa_page(idp, person)
    code = totp_code(person.totp_secret or "") if kind == "totp" else \
        idp.code_sent_to(destination)
    assert submit(browser, page, code=code, action="verify").status_code == 303

    browser, page = mfa_page(idp, person)
    replayed = submit(browser, page, code=code, action="verify")
    assert replayed.status_code == 200 and 'value="mfa_challenge"' in replayed.text
    assert 'role="alert"' in replayed.text
