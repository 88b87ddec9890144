"""Cross-site request forgery on every hosted form.

For each form (one test each), the victim's browser has the page open (its session
cookie holds the CSRF token); the attacker makes it POST the form's fields and values
with the token left out, then with a valid token of the attacker's own session. Each
answer is a 400 page and nothing the form would change has changed. Then the same POST
with the page's own token does change it: the check can see a change.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from idp.db import db
from idp.models import (
    Consent,
    IdpSession,
    LegacyMigration,
    LoginTransaction,
    MfaMethod,
    RecoveryCode,
    TrustedDevice,
    User,
)
from tests.admin_fixtures import make_staff
from tests.driver import answer_mfa, sign_in, totp_code
from tests.factories import make_client
from tests.html_forms import Form, parse_forms
from tests.legacy import LEGACY_PASSWORD
from tests.security.conftest import (
    ACR_MFA,
    LiveClient,
    LiveIdP,
    LiveResponse,
    Person,
    Registered,
    add_legacy_account,
    add_legacy_portal,
    after_password,
    form_of,
    login_page,
    mfa_page,
    open_page,
    signed_in,
    submit,
)

_numbers = itertools.count(1)


@dataclass
class Site:
    idp: LiveIdP
    third_party: str
    legacy: Registered


@dataclass
class Target:
    """A form open in the victim's browser, what a person would enter, and a snapshot of
    what submitting it changes."""

    browser: LiveClient
    form: Form
    values: dict[str, str]
    state: Callable[[], Any]


@pytest.fixture(scope="module")
def site(idp: LiveIdP) -> Site:
    with idp.context():
        third = make_client(first_party=False, portal_slug=idp.portal_slug)
        third_party = third.client.client_id
    return Site(idp, third_party, add_legacy_portal(idp))


def look(idp: LiveIdP, read: Callable[[], Any]) -> Callable[[], Any]:
    """A snapshot function: `read()` in an app context of the live server's database."""
    def snapshot() -> Any:
        with idp.context():
            try:
                return read()
            finally:
                db.session.remove()
    return snapshot


def user_of(email: str) -> User:
    return db.session.execute(db.select(User).filter_by(email=email)).scalar_one()


def tx_of(form: Form) -> str:
    return form.action.split("/login/", 1)[1].split("?", 1)[0]


def methods_of(email: str) -> list[tuple[int, str | None, bool]]:
    return [(m.id, m.label, m.confirmed_at is not None) for m in db.session.scalars(
        db.select(MfaMethod).filter_by(user_id=user_of(email).id).order_by(MfaMethod.id))]


def live_trusts(email: str) -> list[int]:
    return [t.id for t in db.session.scalars(db.select(TrustedDevice).filter_by(
        user_id=user_of(email).id, revoked_at=None))]


# -- the forms ---------------------------------------------------------------------------------


def step_target(site: Site, browser: LiveClient, page: LiveResponse,
                values: dict[str, str]) -> Target:
    """A login step's form; its state is the transaction's progress."""
    form = parse_forms(page.text)[0]
    tx_id = tx_of(form)

    def progress() -> Any:
        tx = db.session.get(LoginTransaction, tx_id)
        assert tx is not None
        migration = db.session.scalars(db.select(LegacyMigration).filter_by(tx_id=tx_id)).first()
        consent = db.session.scalars(db.select(Consent).filter_by(
            client_id=tx.client_id)).all()
        return (tx.authenticated_at is not None, list(tx.amr), tx.completed_at is not None,
                tx.consented_scope, len(consent),
                (migration.email, migration.verified_at is not None) if migration else None)

    return Target(browser, form, values, look(site.idp, progress))


def sign_in_form(site: Site) -> Target:
    browser = site.idp.client()
    page = login_page(site.idp, browser)
    return step_target(site, browser, page, {"email": site.idp.person.email,
                                             "password": site.idp.person.password})


def legacy_page(site: Site, step: str) -> tuple[LiveClient, LiveResponse, str]:
    """A legacy username signed in and moving to its email, at `step`."""
    number = next(_numbers)
    username, email = f"agent{number}", f"agent{number}@example.org"
    add_legacy_account(site.idp, username, email)
    browser = site.idp.client()
    page = login_page(site.idp, browser, site.legacy.client_id)
    page = after_password(browser, page, Person(username, "", LEGACY_PASSWORD))
    assert 'value="migrate_legacy"' in page.text, page.text[:300]
    if step != "migrate_legacy":
        page = follow(browser, submit(browser, page, email=email))
        assert 'value="verify_email"' in page.text
    if step == "set_password":
        page = follow(browser, submit(browser, page, code=site.idp.code_sent_to(email),
                                      action="verify"))
        assert 'value="set_password"' in page.text
    return browser, page, email


def follow(browser: LiveClient, response: LiveResponse) -> LiveResponse:
    from tests.driver import follow_to_client

    return follow_to_client(browser, response)


def legacy_migrate_form(site: Site) -> Target:
    browser, page, email = legacy_page(site, "migrate_legacy")
    return step_target(site, browser, page, {"email": email})


def legacy_verify_email_form(site: Site) -> Target:
    browser, page, email = legacy_page(site, "verify_email")
    return step_target(site, browser, page, {"code": site.idp.code_sent_to(email),
                                             "action": "verify"})


def legacy_set_password_form(site: Site) -> Target:
    browser, page, email = legacy_page(site, "set_password")
    target = step_target(site, browser, page, {"password": "a password of my own 42"})

    def migrated() -> Any:
        from idp.models import LegacyAccount

        account = db.session.scalars(db.select(LegacyAccount).filter_by(email=email)).one()
        return account.migrated_at is not None
    target.state = look(site.idp, migrated)
    return target


def reset_request_form(site: Site) -> Target:
    browser = site.idp.client()
    page = open_page(browser, "/reset", portal=site.idp.portal_slug)
    email = site.idp.person.email
    return Target(browser, form_of(page, "/reset"), {"email": email},
                  lambda: len(site.idp.messages_to(email)))


def set_password_form(site: Site) -> Target:
    person = site.idp.make_person(totp=False)
    requester = site.idp.client()
    submit(requester, open_page(requester, "/reset", portal=site.idp.portal_slug),
           email=person.email)
    browser = site.idp.client()
    page = browser.get(site.idp.link_sent_to(person.email))
    return Target(browser, form_of(page, "/password/"), {"password": "my new password 2026"},
                  look(site.idp, lambda: user_of(person.email).password_hash))


def registration_form(site: Site) -> Target:
    browser = site.idp.client()
    page = open_page(browser, "/register", portal=site.idp.portal_slug)
    email = f"newcomer{next(_numbers)}@example.org"
    return Target(browser, form_of(page, "/register"), {"email": email, "name": "New Comer"},
                  lambda: len(site.idp.messages_to(email)))


def registration_link_form(site: Site) -> Target:
    email = f"joiner{next(_numbers)}@example.org"
    requester = site.idp.client()
    submit(requester, open_page(requester, "/register", portal=site.idp.portal_slug),
           email=email, name="Joiner")
    browser = site.idp.client()
    page = browser.get(site.idp.link_sent_to(email, "/register/"))

    def account() -> Any:
        return db.session.execute(db.select(User.id).filter_by(email=email)).first() is not None
    return Target(browser, form_of(page, "/register/"), {"password": "a password I chose 99"},
                  look(site.idp, account))


def mfa_enrol_form(site: Site) -> Target:
    from tests.driver import shown_totp_secret

    person = site.idp.make_person(totp=False)
    browser, page = mfa_page(site.idp, person)
    page = submit(browser, page, kind="totp", action="choose")
    secret = shown_totp_secret(page)
    return Target(browser, form_of(page, "method=totp"),
                  {"code": totp_code(secret), "action": "verify"},
                  look(site.idp, lambda: methods_of(person.email)))


def mfa_challenge_form(site: Site) -> Target:
    person = site.idp.make_person()
    browser, page = mfa_page(site.idp, person)
    assert 'value="mfa_challenge"' in page.text
    return step_target(site, browser, page, {"code": totp_code(person.totp_secret or ""),
                                             "action": "verify"})


def consent_form(site: Site) -> Target:
    browser = site.idp.client()
    page = after_password(browser, login_page(site.idp, browser, site.third_party),
                          site.idp.make_person(totp=False))
    assert 'value="consent"' in page.text
    return step_target(site, browser, page, {"action": "allow"})


def logout_confirmation_form(site: Site) -> Target:
    person = site.idp.make_person(totp=False)
    browser = signed_in(site.idp, person)
    page = browser.get("/logout")

    def live_sessions() -> Any:
        return len(db.session.scalars(db.select(IdpSession).filter_by(
            user_id=user_of(person.email).id, ended_at=None)).all())
    return Target(browser, form_of(page, "/logout"), {}, look(site.idp, live_sessions))


def account_verify_form(site: Site) -> Target:
    person = site.idp.make_person()
    browser = signed_in(site.idp, person)
    page = browser.get("/account/verify")
    return Target(browser, form_of(page, "/account/verify"),
                  {"code": totp_code(person.totp_secret or ""), "action": "verify"},
                  lambda: browser.get("/account/verify").status_code)  # 303 once fresh


def fresh_account(site: Site, trust: bool = False) -> tuple[LiveClient, Person]:
    """A person with an authenticator app, signed in with it just now (on /account)."""
    person = site.idp.make_person()
    browser = site.idp.client()
    sign_in(browser, site.idp.rp.client_id, person.email, acr_values=ACR_MFA,
            mfa=lambda page: answer_mfa(browser, page, totp_code(person.totp_secret or ""),
                                        "24" if trust else "0"))
    return browser, person


def account_rename_form(site: Site) -> Target:
    browser, person = fresh_account(site)
    return Target(browser, form_of(browser.get("/account"), "/rename"),
                  {"label": "Attacker's phone"}, look(site.idp, lambda: methods_of(person.email)))


def account_remove_form(site: Site) -> Target:
    browser, person = fresh_account(site)
    return Target(browser, form_of(browser.get("/account"), "/remove"), {},
                  look(site.idp, lambda: methods_of(person.email)))


def account_recovery_codes_form(site: Site) -> Target:
    browser, person = fresh_account(site)

    def codes() -> Any:
        return sorted(c.id for c in db.session.scalars(db.select(RecoveryCode).filter_by(
            user_id=user_of(person.email).id)))
    return Target(browser, form_of(browser.get("/account"), "/recovery-codes"), {},
                  look(site.idp, codes))


def account_revoke_trust_form(site: Site) -> Target:
    browser, person = fresh_account(site, trust=True)
    return Target(browser, form_of(browser.get("/account"), "/revoke"), {},
                  look(site.idp, lambda: live_trusts(person.email)))


def account_revoke_all_trust_form(site: Site) -> Target:
    browser, person = fresh_account(site, trust=True)
    return Target(browser, form_of(browser.get("/account"), "/revoke-all"), {},
                  look(site.idp, lambda: live_trusts(person.email)))


def account_add_method_form(site: Site) -> Target:
    from tests.driver import shown_totp_secret

    person = site.idp.make_person(totp=False)
    browser = signed_in(site.idp, person)
    page = browser.get("/account/add/totp")
    return Target(browser, form_of(page, "/account/add/totp"),
                  {"code": totp_code(shown_totp_secret(page)), "action": "verify"},
                  look(site.idp, lambda: methods_of(person.email)))


def console_sign_out_form(site: Site) -> Target:
    with site.idp.context():
        staff = make_staff("admin")
        email, secret = staff.email, staff.totp_secret
        db.session.remove()
    browser = site.idp.client()
    page = follow(browser, browser.get("/admin/sign-in"))
    page = after_password(browser, page, Person(email, ""))
    home = browser.follow(answer_mfa(browser, page, totp_code(secret)))
    assert home.status_code == 200 and "/admin" in home.url, home.text[:300]
    return Target(browser, form_of(home, "/admin/sign-out"), {},
                  lambda: browser.get("/admin/").status_code)  # 303 to sign in once out


FORMS: dict[str, Callable[[Site], Target]] = {
    "sign-in": sign_in_form,
    "legacy-confirm-email": legacy_migrate_form,
    "legacy-verify-email": legacy_verify_email_form,
    "legacy-set-password": legacy_set_password_form,
    "reset-request": reset_request_form,
    "set-password-from-link": set_password_form,
    "registration": registration_form,
    "registration-link": registration_link_form,
    "mfa-enrol": mfa_enrol_form,
    "mfa-challenge": mfa_challenge_form,
    "consent": consent_form,
    "logout-confirmation": logout_confirmation_form,
    "account-verify": account_verify_form,
    "account-rename-method": account_rename_form,
    "account-remove-method": account_remove_form,
    "account-new-recovery-codes": account_recovery_codes_form,
    "account-revoke-trusted-browser": account_revoke_trust_form,
    "account-revoke-all-trusted-browsers": account_revoke_all_trust_form,
    "account-add-method": account_add_method_form,
    "console-sign-out": console_sign_out_form,
}


def attackers_token(site: Site) -> str:
    """A valid CSRF token, of the attacker's own session (from any page with a form)."""
    page = site.idp.client().get("/reset")
    return form_of(page, "/reset").fields["csrf_token"]


@pytest.mark.parametrize("name", FORMS)
def test_forged_post_without_the_sessions_token_is_refused_and_changes_nothing(
        site: Site, name: str) -> None:
    """The token left out, then a valid token of the attacker's own session: both 400."""
    target = FORMS[name](site)
    fields = {**target.form.fields, **target.values}
    genuine = fields.pop("csrf_token")
    assert genuine, "the form carries a CSRF token"
    foreign = attackers_token(site)
    assert foreign != genuine
    before = target.state()

    for forged_fields in (fields, {**fields, "csrf_token": foreign}):
        forged = target.browser.post(target.form.action, data=forged_fields)
        assert forged.status_code == 400, (forged.status_code, forged.text[:300])
        assert target.state() == before

    # The control: the page's own token makes the same POST change what it should.
    target.browser.post(target.form.action, data={**fields, "csrf_token": genuine})
    assert target.state() != before
