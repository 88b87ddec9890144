"""Session fixation: a cookie an attacker held or planted before a sign-in gains nothing.

The session cookie is signed, not encrypted, and holds opaque ids only (DESIGN.md): the
browser id that login transactions are bound to, the CSRF token, and after a sign-in the
IdP session id (`sid`). The attacker obtains a cookie by visiting the IdP, plants a copy
in the victim's browser (a cookie-injection bug elsewhere, or plain HTTP), and keeps
their own copy. After the victim signs in, the attacker's copy must not be signed in,
must not reach the victim's sign-in in progress, and its CSRF token must not work.
"""

from __future__ import annotations

from tests.driver import authorization_params, exchange_code, pkce_pair, query_of, shows_step
from tests.security.conftest import (
    LiveClient,
    LiveIdP,
    LiveResponse,
    after_password,
    form_of,
    login_page,
    signed_in,
    submit,
)


def is_signed_in(idp: LiveIdP, browser: LiveClient) -> bool:
    response = browser.get("/authorize", query_string=authorization_params(
        idp.rp.client_id, prompt="none"))
    assert response.status_code == 302, response.text[:300]
    return "code" in query_of(response.location)


def sid_of(idp: LiveIdP, browser: LiveClient) -> str:
    """The `sid` of the browser's IdP session, as an ID token tells the client."""
    from tests.driver import id_token_claims

    verifier, challenge = pkce_pair()
    response = browser.get("/authorize", query_string=authorization_params(
        idp.rp.client_id, prompt="none", code_challenge=challenge,
        code_challenge_method="S256"))
    code = query_of(response.location)["code"]
    tokens = exchange_code(idp.client(), code, idp.rp.client_id, idp.rp.client_secret, verifier)
    return str(id_token_claims(idp.client(), tokens.json["id_token"])["sid"])


def planted(idp: LiveIdP, attacker: LiveClient) -> LiveClient:
    """The victim's browser, carrying a copy of the attacker's cookies."""
    victim = idp.client()
    victim.set_cookies(attacker.cookies)
    return victim


def test_the_cookie_from_before_sign_in_is_not_signed_in_after_it(idp: LiveIdP) -> None:
    attacker = idp.client()
    page = login_page(idp, attacker)  # the attacker's visit: a cookie with a browser id
    assert attacker.cookies
    victim = planted(idp, attacker)
    before = victim.cookies
    done = victim.follow(after_password(victim, page, idp.person))
    assert done.status_code in (302, 303) and "code=" in done.location  # the victim is in
    assert victim.cookies != before
    assert not is_signed_in(idp, attacker)
    assert attacker.get("/account").status_code == 401


def test_a_planted_cookie_does_not_reach_the_victims_sign_in_in_progress(idp: LiveIdP) -> None:
    """The attacker starts a sign-in, lures the victim to its page with the planted cookie,
    and loads the page again once the victim has entered the password."""
    attacker = idp.client()
    page = login_page(idp, attacker)
    tx_path = form_of(page, "/login/").action
    victim = planted(idp, attacker)
    lured = victim.get(tx_path)
    assert shows_step(lured, "password")
    entered = submit(victim, lured, email=idp.person.email, password=idp.person.password)
    # The victim's own sign-in goes on undisturbed: the form answers the client.
    assert entered.status_code == 303 and "code=" in entered.location

    taken = attacker.follow(attacker.get(tx_path))
    assert "code=" not in taken.location and taken.status_code == 400, taken.status_code
    assert not is_signed_in(idp, attacker)


def test_a_planted_cookie_does_not_reach_a_sign_in_waiting_for_consent(idp: LiveIdP) -> None:
    """The same with a third-party client: the consent page would give the attacker the
    victim's session if the transaction were still theirs."""
    from idp.db import db
    from tests.factories import make_client

    with idp.context():
        third = make_client(first_party=False, portal_slug=idp.portal_slug).client.client_id
        db.session.remove()
    attacker = idp.client()
    tx_path = form_of(login_page(idp, attacker, third), "/login/").action
    victim = planted(idp, attacker)
    consent = after_password(victim, victim.get(tx_path), idp.make_person(totp=False))
    assert shows_step(consent, "consent")

    taken = attacker.get(tx_path)
    assert taken.status_code == 400 and 'value="consent"' not in taken.text
    assert not is_signed_in(idp, attacker)


def test_the_csrf_token_of_a_planted_cookie_is_void_after_sign_in(idp: LiveIdP) -> None:
    attacker = idp.client()
    known_token = form_of(login_page(idp, attacker), "/login/").fields["csrf_token"]
    victim = planted(idp, attacker)
    victim.follow(after_password(victim, login_page(idp, victim), idp.person))
    assert is_signed_in(idp, victim)
    # A forged "Sign out" with the token the attacker knows, sent by the victim's browser.
    forged = victim.post("/logout", data={"csrf_token": known_token, "confirm": "yes"})
    assert forged.status_code == 400
    assert is_signed_in(idp, victim)


def test_another_persons_sign_in_gets_a_new_session_id(idp: LiveIdP) -> None:
    """The attacker signs in as themselves and plants that cookie; the victim then signs in
    on that browser: a new IdP session (sid), and the attacker's copy is not the victim."""
    attacker_person = idp.make_person(totp=False)
    attacker = signed_in(idp, attacker_person)
    attackers_sid = sid_of(idp, attacker)
    victim = planted(idp, attacker)
    page = login_page(idp, victim, prompt="login")
    victim.follow(after_password(victim, page, idp.person))
    assert sid_of(idp, victim) != attackers_sid
    assert not is_signed_in(idp, attacker)


def test_signing_in_again_after_signing_out_gets_a_new_session_id(idp: LiveIdP) -> None:
    browser = signed_in(idp)
    first_sid = sid_of(idp, browser)
    old_copy = idp.client()
    old_copy.set_cookies(browser.cookies)
    page: LiveResponse = browser.get("/logout")
    submit(browser, page)
    assert not is_signed_in(idp, browser)
    browser.follow(after_password(browser, login_page(idp, browser), idp.person))
    assert sid_of(idp, browser) != first_sid
    assert not is_signed_in(idp, old_copy)
