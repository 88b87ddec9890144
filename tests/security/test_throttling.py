"""Brute force over HTTP, at every credential check.

After a few free failures each check answers 429 Too Many Requests with Retry-After
(the page still explains it to people), even for the right secret; the waits grow; a
success resets them; and an account never takes more than 100 consecutive password
failures (NIST SP 800-63B 5.2.2): then only a reset by email lets its owner in again.

The live server shares the IdP's clock with the test, so waits pass by `clock.advance`.
"""

from __future__ import annotations

import secrets

import pytest

from idp.db import db
from idp.mfa.methods import THROTTLE_AFTER
from idp.mfa.recovery import recovery_key
from idp.models import User
from idp.security import throttle
from tests.driver import basic_auth, shows_step, totp_code
from tests.factories import make_client
from tests.html_forms import parse_forms
from tests.legacy import LEGACY_PASSWORD
from tests.security.conftest import (
    LiveClient,
    LiveIdP,
    LiveResponse,
    Person,
    add_legacy_account,
    add_legacy_portal,
    add_method,
    form_of,
    login_page,
    mfa_page,
    open_page,
    recovery_codes_of,
    signed_in,
    submit,
)

WRONG = "certainly not the password"


def retry_after(response: LiveResponse) -> int:
    """The wait of a throttled answer (asserting it is one)."""
    assert response.status_code == 429, (response.status_code, response.text[:300])
    assert "Too many" in response.text or "paused" in response.text
    wait = int(response.headers["Retry-After"])
    assert wait >= 1
    return wait


def guess_password(browser: LiveClient, page: LiveResponse, who: str,
                   password: str = WRONG) -> LiveResponse:
    return submit(browser, page, email=who, password=password)


# -- passwords ----------------------------------------------------------------------------------


@pytest.mark.parametrize("known", [True, False], ids=["known-email", "unknown-email"])
def test_password_guessing_gets_429_with_retry_after(idp: LiveIdP, known: bool) -> None:
    person = idp.make_person(totp=False) if known else Person("nobody.at.all@example.org", "")
    browser = idp.client()
    page = login_page(idp, browser)
    for _ in range(throttle.ACCOUNT.free):
        page = guess_password(browser, page, person.email)
        assert page.status_code == 200 and shows_step(page, "password")
    # Even the right password now waits: the attacker learns nothing from trying it.
    retry_after(guess_password(browser, page, person.email, person.password or WRONG))


def test_password_waits_grow_and_a_success_resets_them(idp: LiveIdP, clock) -> None:
    person = idp.make_person(totp=False)
    browser = idp.client()
    page = login_page(idp, browser)
    for _ in range(throttle.ACCOUNT.free):
        page = guess_password(browser, page, person.email)
    waits = []
    for _ in range(4):
        waits.append(retry_after(guess_password(browser, page, person.email)))
        clock.advance(waits[-1])
        page = guess_password(browser, page, person.email)  # allowed again: one more failure
        assert page.status_code == 200
    assert waits == sorted(waits) and waits[-1] >= 4 * waits[0], waits

    clock.advance(2 * waits[-1])
    done = guess_password(browser, page, person.email, person.password)
    assert done.status_code == 303
    # The count starts again from zero: the next wrong password is not throttled.
    other = idp.client()
    again = guess_password(other, login_page(idp, other), person.email)
    assert again.status_code == 200


def test_an_account_takes_at_most_100_consecutive_password_failures(
        idp: LiveIdP, clock) -> None:
    """The first 95 failures are recorded directly (the tests above show each one counts
    over HTTP); the last five, the lock and the owner's way back go over HTTP."""
    person = idp.make_person(totp=False)
    with idp.context():
        for _ in range(throttle.MAX_CONSECUTIVE_FAILURES - 5):
            throttle.record_failure(throttle.account_key("password", person.email))
        db.session.remove()
    failures = throttle.MAX_CONSECUTIVE_FAILURES - 5
    while failures < throttle.MAX_CONSECUTIVE_FAILURES:
        clock.advance(throttle.ACCOUNT.max_wait + 1)
        browser = idp.client()
        answer = guess_password(browser, login_page(idp, browser), person.email)
        assert answer.status_code == 200
        failures += 1

    # Locked: the right password is refused however long the attacker (or owner) waits,
    # and no Retry-After promises otherwise.
    for wait in (throttle.ACCOUNT.max_wait + 1, int(throttle.FORGET_AFTER.total_seconds()) * 2):
        clock.advance(wait)
        browser = idp.client()
        refused = guess_password(browser, login_page(idp, browser), person.email,
                                 person.password)
        assert refused.status_code == 429 and "Retry-After" not in refused.headers
        assert "Password not working?" in refused.text

    # The owner proves their email with a reset link and is in again.
    requester = idp.client()
    submit(requester, open_page(requester, "/reset", portal=idp.portal_slug), email=person.email)
    browser = idp.client()
    new_password = "the owner's fresh passphrase"
    assert submit(browser, browser.get(idp.link_sent_to(person.email)),
                  password=new_password).status_code == 303
    browser = idp.client()
    done = guess_password(browser, login_page(idp, browser), person.email, new_password)
    assert done.status_code == 303


def test_legacy_password_guessing_gets_429(idp: LiveIdP) -> None:
    legacy = add_legacy_portal(idp)
    add_legacy_account(idp, "agent_throttled", "agent.throttled@example.org")
    browser = idp.client()
    page = login_page(idp, browser, legacy.client_id)
    for _ in range(throttle.ACCOUNT.free):
        page = guess_password(browser, page, "agent_throttled")
        assert page.status_code == 200
    retry_after(guess_password(browser, page, "agent_throttled", LEGACY_PASSWORD))


# -- second factors -----------------------------------------------------------------------------


def test_totp_guessing_gets_429_the_waits_grow_and_a_success_resets(idp: LiveIdP, clock) -> None:
    person = idp.make_person()
    browser, page = mfa_page(idp, person)
    for _ in range(THROTTLE_AFTER):
        page = submit(browser, page, code="000000", action="verify")
        assert page.status_code == 200 and shows_step(page, "mfa_challenge")
    first = retry_after(submit(browser, page, code=totp_code(person.totp_secret or ""),
                               action="verify"))
    clock.advance(first)
    page = submit(browser, page, code="000000", action="verify")  # allowed: one more failure
    second = retry_after(submit(browser, page, code="000000", action="verify"))
    assert second > first
    clock.advance(second)
    passed = submit(browser, page, code=totp_code(person.totp_secret or ""), action="verify")
    assert passed.status_code == 303
    with idp.context():
        from idp.models import MfaMethod

        user = db.session.execute(db.select(User).filter_by(email=person.email)).scalar_one()
        assert db.session.execute(db.select(MfaMethod.failed_attempts).filter_by(
            user_id=user.id)).scalar_one() == 0
        db.session.remove()


def test_totp_takes_at_most_100_consecutive_failures(idp: LiveIdP, clock) -> None:
    """99 failures recorded directly, the 100th over HTTP: then even the right code waits
    for good (a recovery code, another method or an MFA reset by staff lets the owner in)."""
    from idp.models import MfaMethod

    person = idp.make_person()
    with idp.context():
        user = db.session.execute(db.select(User).filter_by(email=person.email)).scalar_one()
        db.session.execute(db.update(MfaMethod).filter_by(user_id=user.id).values(
            failed_attempts=throttle.MAX_CONSECUTIVE_FAILURES - 1))
        db.session.commit()
        db.session.remove()
    browser, page = mfa_page(idp, person)
    assert submit(browser, page, code="000000", action="verify").status_code == 200
    clock.advance(24 * 3600)
    browser, page = mfa_page(idp, person)
    refused = submit(browser, page, code=totp_code(person.totp_secret or ""), action="verify")
    assert refused.status_code == 429 and "Retry-After" not in refused.headers


@pytest.mark.parametrize("kind", ["email", "sms"])
def test_emailed_and_texted_code_guessing_is_limited_then_gets_429(
        idp: LiveIdP, clock, kind: str) -> None:
    """Five tries void a code; ten wrong codes in a row make every next try wait."""
    person = idp.make_person(totp=False)
    destination = person.email if kind == "email" else f"+1203555{secrets.randbelow(10**4):04d}"
    add_method(idp, person, kind, destination)
    browser, page = mfa_page(idp, person)  # opening the page sends the first code
    code = idp.code_sent_to(destination)
    for _ in range(5):
        page = submit(browser, page, code="000000" if code != "000000" else "111111",
                      action="verify")
    spent = submit(browser, page, code=code, action="verify")
    assert spent.status_code == 200 and "too many times" in spent.text

    clock.advance(31)  # "Resend code" after 30 s
    [resend] = [f for f in parse_forms(spent.text) if f.buttons.get("action") == "resend"]
    page = browser.post(resend.action, data={**resend.fields, "action": "resend"})
    code = idp.code_sent_to(destination)
    for _ in range(5):
        page = submit(browser, page, code="000000" if code != "000000" else "111111",
                      action="verify")
    retry_after(submit(browser, page, code=code, action="verify"))


def test_recovery_code_guessing_gets_429(idp: LiveIdP, clock) -> None:
    person = idp.make_person()
    codes = recovery_codes_of(idp, person)
    browser, page = mfa_page(idp, person)
    for _ in range(throttle.ACCOUNT.free):
        page = submit(browser, page, method="recovery", code="aaaa-bbbb-cccc-dddd",
                      action="verify")
        assert page.status_code == 200
    wait = retry_after(submit(browser, page, method="recovery", code=codes[0], action="verify"))
    clock.advance(wait)
    assert submit(browser, page, method="recovery", code=codes[0],
                  action="verify").status_code == 303
    with idp.context():
        user = db.session.execute(db.select(User).filter_by(email=person.email)).scalar_one()
        assert throttle.check(recovery_key(user)).allowed  # the success reset the count
        db.session.remove()


def test_second_factor_guessing_on_the_account_page_gets_429(idp: LiveIdP) -> None:
    person = idp.make_person()
    browser = signed_in(idp, person)
    page = browser.get("/account/verify")
    for _ in range(THROTTLE_AFTER):
        page = submit(browser, page, code="000000", action="verify")
        assert page.status_code == 200
    retry_after(submit(browser, page, code=totp_code(person.totp_secret or ""), action="verify"))


# -- links and client secrets -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/password/", "/register/"],
                         ids=["reset-or-invitation-link", "registration-link"])
def test_link_guessing_gets_429_and_the_waits_grow(idp: LiveIdP, clock, path: str) -> None:
    browser = idp.client()

    def guess() -> LiveResponse:
        return browser.get(path + secrets.token_urlsafe(32))

    for _ in range(throttle.ADDRESS.free):
        assert guess().status_code == 404
    first = retry_after(guess())
    clock.advance(first)
    assert guess().status_code == 404
    assert retry_after(guess()) > first


@pytest.fixture(scope="module")
def service(idp: LiveIdP) -> tuple[str, str]:
    with idp.context():
        client = make_client(grant_types=["client_credentials"], redirect_uris=[],
                             scopes=["reports:read"])
        return client.client.client_id, client.client_secret or ""


def test_client_secret_guessing_gets_429_the_waits_grow_and_a_success_resets(
        idp: LiveIdP, service: tuple[str, str], clock) -> None:
    client_id, secret = service
    browser = idp.client()

    def token(password: str) -> LiveResponse:
        return browser.post("/token", data={"grant_type": "client_credentials"},
                            headers=basic_auth(client_id, password))

    for _ in range(throttle.CLIENT.free):
        assert token("a guess").status_code == 401
    first = retry_after(token(secret))
    assert token("a guess").json["error"] == "invalid_client"  # 429 bodies say so too
    clock.advance(first)
    assert token("a guess").status_code == 401
    second = retry_after(token(secret))
    assert second > first
    clock.advance(second)
    assert token(secret).status_code == 200
    assert token("a guess").status_code == 401  # counting starts again


def test_forms_of_throttled_pages_name_the_wait(idp: LiveIdP) -> None:
    """People get the same news as tools: the throttled page says how long to wait."""
    person = idp.make_person(totp=False)
    browser = idp.client()
    page = login_page(idp, browser)
    for _ in range(throttle.ACCOUNT.free):
        page = guess_password(browser, page, person.email)
    blocked = guess_password(browser, page, person.email)
    wait = retry_after(blocked)
    assert f"{wait} second" in blocked.text and form_of(blocked, "/login/")
