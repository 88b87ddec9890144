"""Legacy usernames at sign-in: before the portal's date as before, then on to an email.

The migration steps (migrate_legacy, verify_email, set_password) run over real SMTP: codes
leave through the outbox worker (`deliver_due`) to an aiosmtpd server on 127.0.0.1 and
are read from the email as a person would.
"""

from __future__ import annotations

import html
import re
import time
from datetime import timedelta

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.clock import utcnow
from idp.db import db
from idp.legacy import signin
from idp.legacy.accounts import retire_accounts
from idp.login.steps.password import WRONG_CREDENTIALS
from idp.models import LegacyAccount, User
from idp.notify.worker import deliver_due
from idp.portals import create_portal, update_portal
from tests.driver import (
    authorization_response_params,
    authorize,
    exchange_code,
    follow_to_client,
    open_login_page,
    query_of,
    shows_step,
    submit_form,
)
from tests.factories import PASSWORD, REDIRECT_URI, make_client, make_user
from tests.html_forms import parse_forms, parse_labels
from tests.legacy import LEGACY_PASSWORD, account, import_rows, legacy_row
from tests.smtp_server import smtp_settings

NEW_PASSWORD = "lanterns over the quiet harbour"
CODE = re.compile(r"\b(\d{6})\b")


@pytest.fixture
def settings_overrides(smtp_server):
    return smtp_settings(smtp_server)


@pytest.fixture
def portal(app):
    portal = create_portal("lakeside", "Lakeside MLS")
    import_rows(portal,
                legacy_row("JSmith", "pat@example.org", name="Pat Smith", contact_id="C-1"),
                legacy_row("mjones", "", name="Morgan Jones"),
                legacy_row("invite-me", "invitee@example.org", password=None))
    return portal


@pytest.fixture
def rp(portal):
    return make_client(portal_slug=portal.slug)


def migration_from(portal, days_from_today: int | None) -> None:
    """Set the portal's email_username_migration_from relative to today (None: unset)."""
    day = "" if days_from_today is None else \
        (utcnow().date() + timedelta(days=days_from_today)).isoformat()
    update_portal(portal.slug, {"email_username_migration_from": day})


# -- actions ------------------------------------------------------------------------------


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def sign_in_with(http, rp, username: str, password: str, **params):
    """Open the sign-in page of `rp` and send `username` / `password`; the next response."""
    page = open_login_page(http, rp.client.client_id, **params)
    return follow_to_client(http, submit_form(http, page, email=username, password=password))


def code_sent_to(smtp_server, address: str) -> str:
    deliver_due()
    messages = [m for m in smtp_server.messages if m["To"] == address]
    assert messages, f"no email to {address}"
    match = CODE.search(smtp_server.text_of(messages[-1]))
    assert match, smtp_server.text_of(messages[-1])
    return match.group(1)


def confirm_email(http, page, email: str | None = None):
    assert shows_step(page, "migrate_legacy"), text_of(page)[:500]
    values = {} if email is None else {"email": email}
    return follow_to_client(http, submit_form(http, page, **values))


def enter_code(http, page, code: str, **values: str):
    assert shows_step(page, "verify_email"), text_of(page)[:500]
    return follow_to_client(http, submit_form(http, page, code=code, **values))


def choose_password(http, page, password: str = NEW_PASSWORD):
    assert shows_step(page, "set_password"), text_of(page)[:500]
    return follow_to_client(http, submit_form(http, page, password=password))


def migrate(http, smtp_server, page, email: str, password: str = NEW_PASSWORD):
    """From the migrate_legacy page to the portal: confirm `email`, code, new password."""
    verify = confirm_email(http, page, email)
    chosen = enter_code(http, verify, code_sent_to(smtp_server, email))
    return choose_password(http, chosen, password)


def claims_of(http, rp, response) -> dict:
    """The ID token claims `rp` gets for the code in `response` (its redirect)."""
    assert response.status_code in (302, 303) and response.location.startswith(REDIRECT_URI), \
        (response.status_code, text_of(response)[:500])
    code = query_of(response.location)["code"]
    tokens = exchange_code(http, code, rp.client.client_id, rp.client_secret)
    assert tokens.status_code == 200, tokens.json
    keys = KeySet.import_key_set(http.get("/jwks").json)
    return dict(jwt.decode(tokens.json["id_token"], keys).claims)


# -- before the date: as before ------------------------------------------------------------


def test_before_the_date_a_legacy_username_signs_in_as_it_always_did(app, portal, rp):
    migration_from(portal, 7)
    http = app.test_client()
    response = sign_in_with(http, rp, "jsmith", LEGACY_PASSWORD)
    claims = claims_of(http, rp, response)
    assert claims["preferred_username"] == "JSmith"
    assert claims["contact_id"] == "C-1"
    assert claims["legacy_usernames"] == ["JSmith"]
    assert claims["name"] == "Pat Smith"
    assert "email" not in claims  # nothing verified to release yet

    # The old hash is gone, replaced by argon2id; the next sign-in has the same `sub`.
    stored = account(portal, "jsmith")
    assert stored.password_scheme == "argon2" and stored.password_hash.startswith("$argon2id$")
    assert stored.migrated_at is None
    again = app.test_client()
    assert claims_of(again, rp, sign_in_with(again, rp, "JSMITH", LEGACY_PASSWORD))["sub"] \
        == claims["sub"]


def test_the_sign_in_field_says_email_or_username_only_where_legacy_accounts_exist(http, rp):
    other = make_client()
    assert "Email or username" in parse_labels(text_of(open_login_page(http,
                                                                      rp.client.client_id)))
    labels = parse_labels(text_of(open_login_page(http, other.client.client_id)))
    assert "Email" in labels and "Email or username" not in labels


# -- on the date: confirm, verify, set a password -----------------------------------------


def test_on_the_date_the_person_confirms_their_email_proves_it_and_chooses_a_password(
    app, smtp_server, clock, portal, rp
):
    migration_from(portal, 1)
    before = app.test_client()
    sub_before = claims_of(before, rp, sign_in_with(before, rp, "jsmith", LEGACY_PASSWORD))["sub"]

    clock.advance(86400)
    http = app.test_client()
    page = sign_in_with(http, rp, "jsmith", LEGACY_PASSWORD)
    assert shows_step(page, "migrate_legacy")
    assert "Instead of <strong>JSmith</strong>" in " ".join(text_of(page).split())
    assert parse_forms(text_of(page))[0].fields["email"] == "pat@example.org"  # on file
    assert "Email" in parse_labels(text_of(page))

    verify = confirm_email(http, page)
    assert shows_step(verify, "verify_email")
    assert "pat@example.org" in text_of(verify)
    deliver_due()
    [message] = smtp_server.messages
    assert message["To"] == "pat@example.org"
    assert message["Subject"].startswith("Your code for Lakeside MLS: ")
    chosen = enter_code(http, verify, code_sent_to(smtp_server, "pat@example.org"))
    assert "Your username is now your email address" in text_of(chosen)

    # The old password signed in once; today's policy refuses it as the new one.
    refused = choose_password(http, chosen, LEGACY_PASSWORD)
    assert shows_step(refused, "set_password")
    assert "Use at least 12 characters" in text_of(refused)
    response = choose_password(http, refused, NEW_PASSWORD)

    claims = claims_of(http, rp, response)
    assert claims["sub"] == sub_before  # the `sub` the portal knew stays
    assert (claims["email"], claims["email_verified"]) == ("pat@example.org", True)
    assert claims["preferred_username"] == "JSmith" and claims["contact_id"] == "C-1"
    assert claims["legacy_usernames"] == ["JSmith"]
    stored = account(portal, "jsmith")
    assert stored.migrated_at is not None and stored.outcome == "migrated"

    # From now on: the email and the new password; the username gets a friendly hint.
    fresh = app.test_client()
    assert claims_of(fresh, rp, sign_in_with(fresh, rp, "pat@example.org", NEW_PASSWORD))[
        "sub"] == sub_before
    for password in (LEGACY_PASSWORD, NEW_PASSWORD):
        hinted = sign_in_with(app.test_client(), rp, "jsmith", password)
        assert shows_step(hinted, "password")
        assert "You now sign in with your email address (p•••@example.org)" in text_of(hinted)
    wrong = sign_in_with(app.test_client(), rp, "jsmith", "not the password")
    assert WRONG_CREDENTIALS in text_of(wrong)
    assert "p•••@example.org" not in text_of(wrong)


def test_without_a_date_the_migration_starts_at_once(http, rp):
    assert shows_step(sign_in_with(http, rp, "jsmith", LEGACY_PASSWORD), "migrate_legacy")


def test_each_portal_switches_on_its_own_date(app, clock, portal, rp):
    hillside = create_portal("hillside", "Hillside MLS")
    import_rows(hillside, legacy_row("jsmith", "other@example.org"))
    hill_rp = make_client(portal_slug=hillside.slug)
    migration_from(portal, 3)
    migration_from(hillside, 1)

    def needs_migration(client) -> bool:
        response = sign_in_with(app.test_client(), client, "jsmith", LEGACY_PASSWORD)
        if shows_step(response, "migrate_legacy"):
            return True
        assert response.status_code in (302, 303), text_of(response)[:300]
        return False

    assert (needs_migration(rp), needs_migration(hill_rp)) == (False, False)
    clock.advance(86400)
    assert (needs_migration(rp), needs_migration(hill_rp)) == (False, True)
    clock.advance(2 * 86400)
    assert (needs_migration(rp), needs_migration(hill_rp)) == (True, True)


def test_the_person_may_choose_another_email_and_must_prove_that_one(
    http, smtp_server, portal, rp
):
    page = sign_in_with(http, rp, "mjones", LEGACY_PASSWORD)
    assert parse_forms(text_of(page))[0].fields["email"] == ""  # nothing on file
    refused = confirm_email(http, page, "not an email")
    assert "Enter your email address" in text_of(refused)
    verify = confirm_email(http, refused, "morgan@example.org")
    again = follow_to_client(http, submit_form(http, verify, action="change"))
    assert shows_step(again, "migrate_legacy")
    verify = confirm_email(http, again, "m.jones@example.org")
    wrong = enter_code(http, verify, "000000" if code_sent_to(
        smtp_server, "m.jones@example.org") != "000000" else "111111")
    assert "That code doesn't match" in text_of(wrong)
    # A code sent to the first address does not prove the second.
    stale = enter_code(http, wrong, code_sent_to(smtp_server, "morgan@example.org"))
    assert shows_step(stale, "verify_email")
    resent = follow_to_client(http, submit_form(http, stale, action="resend"))
    assert "We sent a new code" in text_of(resent)
    response = choose_password(http, enter_code(http, resent,
                                                code_sent_to(smtp_server, "m.jones@example.org")))
    assert response.status_code in (302, 303)
    user = db.session.execute(db.select(User).filter_by(email="m.jones@example.org")).scalar_one()
    assert user.email_verified and user.name == "Morgan Jones"


def test_the_code_page_does_not_tell_whether_the_email_has_an_account(app, portal, rp):
    make_user("taken@example.org")
    import_rows(portal, legacy_row("other", ""))
    pages = []
    for username, email in (("jsmith", "taken@example.org"), ("other", "free@example.org")):
        http = app.test_client()
        verify = confirm_email(http, sign_in_with(http, rp, username, LEGACY_PASSWORD), email)
        body = re.sub(r'(name="csrf_token" value=")[^"]*', r"\1", text_of(verify))
        pages.append(re.sub(r"/login/[A-Za-z0-9_-]+", "/login/TX", body.replace(email, "E")))
    assert pages[0] == pages[1]


def test_five_wrong_codes_void_the_code(http, smtp_server, rp):
    verify = confirm_email(http, sign_in_with(http, rp, "jsmith", LEGACY_PASSWORD))
    code = code_sent_to(smtp_server, "pat@example.org")
    wrong = "999999" if code != "999999" else "888888"
    for _ in range(5):
        verify = enter_code(http, verify, wrong)
    assert "Too many wrong tries" in text_of(verify)
    assert shows_step(enter_code(http, verify, code), "verify_email")  # void now
    resent = follow_to_client(http, submit_form(http, verify, action="resend"))
    fresh = code_sent_to(smtp_server, "pat@example.org")
    assert shows_step(enter_code(http, resent, fresh), "set_password")


# -- one person, one account ---------------------------------------------------------------


def test_two_legacy_accounts_of_one_person_at_two_portals_become_one_account(
    app, smtp_server, portal, rp
):
    hillside = create_portal("hillside", "Hillside MLS")
    import_rows(hillside, legacy_row("pat.h", "Pat@Example.org", contact_id="H-9",
                                     kind="sha512-crypt", password="hillside pw"))
    hill_rp = make_client(portal_slug=hillside.slug)

    first = app.test_client()
    lakeside_claims = claims_of(first, rp, migrate(
        first, smtp_server, sign_in_with(first, rp, "jsmith", LEGACY_PASSWORD),
        "pat@example.org"))

    second = app.test_client()
    verify = confirm_email(second, sign_in_with(second, hill_rp, "pat.h", "hillside pw"))
    body = text_of(verify)
    assert "Already have an account with this email?" in body
    password_form = parse_forms(body)[1]
    assert password_form.fields["action"] == "password"
    wrong = follow_to_client(second, second.post(password_form.action, data={
        **password_form.fields, "password": "hillside pw"}))
    assert "That password doesn't match" in text_of(wrong)
    password_form = parse_forms(text_of(wrong))[1]
    response = follow_to_client(second, second.post(password_form.action, data={
        **password_form.fields, "password": NEW_PASSWORD}))
    hillside_claims = claims_of(second, hill_rp, response)

    assert hillside_claims["sub"] == lakeside_claims["sub"]
    assert (hillside_claims["contact_id"], hillside_claims["preferred_username"],
            hillside_claims["legacy_usernames"]) == ("H-9", "pat.h", ["pat.h"])
    # Each portal keeps its own contact id and username for the one person.
    again = app.test_client()
    lakeside_again = claims_of(again, rp, sign_in_with(again, rp, "pat@example.org",
                                                       NEW_PASSWORD))
    assert (lakeside_again["contact_id"], lakeside_again["preferred_username"]) == \
        ("C-1", "JSmith")
    linked = account(hillside, "pat.h")
    assert linked.outcome == "linked" and linked.user.email == "pat@example.org"
    assert db.session.scalar(db.select(db.func.count()).select_from(User).where(
        User.disabled_at.is_(None), User.email.like("legacy:%"))) == 0


def test_an_emailed_code_links_legacy_accounts_into_an_existing_account(
    app, smtp_server, portal, rp
):
    existing = make_user("pat@example.org", name="Pat")
    import_rows(portal, legacy_row("psmith2", "pat@example.org", contact_id="C-7"))
    http = app.test_client()
    verify = confirm_email(http, sign_in_with(http, rp, "jsmith", LEGACY_PASSWORD))
    response = enter_code(http, verify, code_sent_to(smtp_server, "pat@example.org"))
    claims = claims_of(http, rp, response)  # no new password: the account has one
    assert claims["sub"] == existing.sub
    # Every pending account of the portal with that (now proven) email joins too.
    assert claims["legacy_usernames"] == ["JSmith", "psmith2"]
    assert {account(portal, u).outcome for u in ("jsmith", "psmith2")} == {"linked"}
    assert app.extensions["idp"].passwords.verify(
        db.session.get(User, existing.id).password_hash, PASSWORD)


# -- failures look alike -------------------------------------------------------------------


def test_a_wrong_legacy_password_gets_the_same_message_and_time_as_any_wrong_password(
    app, monkeypatch, portal, rp
):
    import_rows(portal, legacy_row("slowhash", "s@example.org", kind="bcrypt-2b"))
    make_user("someone@example.org")
    # A floor above any attempt's own work on a slow machine, so only the padding is timed.
    monkeypatch.setattr(signin, "FAILURE_FLOOR_SECONDS", 0.4)
    monkeypatch.setattr(signin, "_slowest", 0.4)
    attempts = {"unknown username": ("nobody-here", "whatever pw"),
                "wrong legacy password": ("slowhash", "wrong pw"),
                "wrong email password": ("someone@example.org", "wrong pw"),
                "account without password": ("invite-me", "whatever pw")}
    pages, times = {}, {}
    for what, (username, password) in attempts.items():
        http = app.test_client()
        page = open_login_page(http, rp.client.client_id)
        started = time.perf_counter()
        response = submit_form(http, page, email=username, password=password)
        times[what] = time.perf_counter() - started
        assert response.status_code == 200
        body = text_of(response)
        assert WRONG_CREDENTIALS in body
        pages[what] = re.sub(r'name="csrf_token" value="[^"]*"', "", body.replace(username, "U"))
        pages[what] = re.sub(r"/login/[A-Za-z0-9_-]+", "/login/TX", pages[what])
        pages[what] = re.sub(r"tx=[A-Za-z0-9_-]+", "tx=TX", pages[what])
    assert len(set(pages.values())) == 1
    assert min(times.values()) >= 0.4 - 0.01, times
    assert max(times.values()) - min(times.values()) < 0.1, times


def test_an_account_without_a_password_cannot_sign_in_by_username(http, rp):
    response = sign_in_with(http, rp, "invite-me", "")
    assert WRONG_CREDENTIALS in text_of(response)


# -- retired usernames ---------------------------------------------------------------------


def test_retiring_a_portals_usernames_leaves_only_emails(app, http, portal, rp):
    update_portal(portal.slug, {"legacy_usernames_retired": "true"})
    page = open_login_page(http, rp.client.client_id)
    assert "Email" in parse_labels(text_of(page))
    assert "Email or username" not in parse_labels(text_of(page))
    response = follow_to_client(http, submit_form(http, page, email="jsmith",
                                                  password=LEGACY_PASSWORD))
    assert WRONG_CREDENTIALS in text_of(response)


def test_retiring_one_username_leaves_the_others(app, portal, rp):
    import_rows(portal, legacy_row("keeper", "k@example.org"))
    assert retire_accounts(portal, ["JSMITH"]) == 1
    assert WRONG_CREDENTIALS in text_of(sign_in_with(app.test_client(), rp, "jsmith",
                                                     LEGACY_PASSWORD))
    assert shows_step(sign_in_with(app.test_client(), rp, "keeper", LEGACY_PASSWORD),
                      "migrate_legacy")


# -- sessions made before the date -----------------------------------------------------------


def test_prompt_none_with_a_session_from_before_the_date_needs_interaction(http, portal, rp):
    migration_from(portal, 5)
    assert sign_in_with(http, rp, "jsmith", LEGACY_PASSWORD).status_code in (302, 303)
    migration_from(portal, 0)
    answer = authorization_response_params(
        follow_to_client(http, authorize(http, rp.client.client_id, prompt="none")))
    assert answer["error"] == "interaction_required"
    # Without prompt=none the same browser goes straight to the migration.
    page = open_login_page(http, rp.client.client_id)
    assert shows_step(page, "migrate_legacy")


def test_a_legacy_session_is_not_single_sign_on_for_another_portal(http, portal, rp):
    migration_from(portal, 5)
    assert sign_in_with(http, rp, "jsmith", LEGACY_PASSWORD).status_code in (302, 303)
    elsewhere = make_client()
    assert shows_step(open_login_page(http, elsewhere.client.client_id), "migrate_legacy")


def test_a_legacy_account_of_a_disabled_placeholder_does_not_sign_in(app, portal, rp):
    migration_from(portal, 5)
    assert sign_in_with(app.test_client(), rp, "jsmith", LEGACY_PASSWORD).status_code in (302, 303)
    placeholder = account(portal, "jsmith").user
    placeholder.disabled_at = utcnow()
    db.session.commit()
    assert WRONG_CREDENTIALS in text_of(sign_in_with(app.test_client(), rp, "jsmith",
                                                     LEGACY_PASSWORD))


def test_every_hash_format_signs_in_and_is_re_hashed(app, portal, rp):
    from tests.legacy import MAKERS

    for number, kind in enumerate(sorted(MAKERS)):
        import_rows(portal, legacy_row(f"user{number}", "", kind=kind))
        response = sign_in_with(app.test_client(), rp, f"user{number}", LEGACY_PASSWORD)
        assert shows_step(response, "migrate_legacy"), (kind, text_of(response)[:300])
        stored = db.session.execute(db.select(LegacyAccount).filter_by(
            portal_id=portal.id, username_key=f"user{number}")).scalar_one()
        assert stored.password_hash.startswith("$argon2id$"), kind


def test_a_legacy_placeholder_is_not_asked_for_mfa_before_it_migrates(app, portal, rp):
    # A placeholder has no address to send codes to; MFA starts once it has an email.
    migration_from(portal, 7)
    yesterday = (utcnow().date() - timedelta(days=1)).isoformat()
    update_portal(portal.slug, {"mfa_required_from": yesterday})
    http = app.test_client()
    claims = claims_of(http, rp, sign_in_with(http, rp, "jsmith", LEGACY_PASSWORD))
    assert claims["preferred_username"] == "JSmith" and claims["amr"] == ["pwd"]
