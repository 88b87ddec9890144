"""Open redirects: the IdP's good name must not carry a person to an attacker's page.

- RP-Initiated Logout redirects only to a `post_logout_redirect_uri` registered for the
  client of a valid `id_token_hint` (exact match); anything else signs out without
  leaving the IdP.
- Every `next` parameter (/account/verify, /admin/sign-in) leads only to a page of the IdP,
  however the URL is disguised. A redirect is judged as a browser reads it: tabs and new
  lines dropped, `\\` read as `/` (WHATWG URL), relative to the IdP.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import pytest

from idp.db import db
from tests.admin_fixtures import make_staff
from tests.driver import (
    answer_mfa,
    authorization_params,
    exchange_code,
    pkce_pair,
    query_of,
    totp_code,
)
from tests.security.conftest import (
    ATTACKER,
    POST_LOGOUT_REDIRECT_URI,
    LiveClient,
    LiveIdP,
    LiveResponse,
    Person,
    after_password,
    open_page,
    signed_in,
)

UNREGISTERED_LOGOUT_URIS = {
    "attacker": ATTACKER + "/signed-out",
    "protocol-relative": "//attacker.example/signed-out",
    "added-query": POST_LOGOUT_REDIRECT_URI + "?next=https://attacker.example",
    "trailing-slash": POST_LOGOUT_REDIRECT_URI + "/",
    "userinfo": "https://rp.example.org@attacker.example/signed-out",
    "other-clients-uri": "https://rp.example.org/callback",
    "javascript": "javascript:alert(document.domain)",
}

NEXT_PAYLOADS = {
    "absolute": ATTACKER + "/",
    "protocol-relative": "//attacker.example/",
    "triple-slash": "///attacker.example/",
    "backslash": "/\\attacker.example/",
    "double-backslash": "\\\\attacker.example/",
    "tab": "/\t/attacker.example/",
    "newline": "/\n/attacker.example/",
    "scheme-without-slashes": "https:attacker.example",
    "javascript": "javascript:alert(document.domain)",
    "data": "data:text/html,<script>alert(1)</script>",
    "encoded-slashes": "/%2F%2Fattacker.example/",
    "userinfo": "//idp@attacker.example/",
    "dot-segments": "/account/../..//attacker.example/",
    "prefix-then-backslash": "/account/..\\/attacker.example/",
    "prefix-then-double-slash": "/account//attacker.example/",
    "console-prefix-then-backslash": "/admin/\\attacker.example/",
    "console-prefix-then-double-slash": "/admin//attacker.example/",
}


def destination(idp: LiveIdP, response: LiveResponse) -> str:
    """Where a browser goes from this redirect (an absolute URL)."""
    assert response.status_code in (301, 302, 303, 307, 308), response.status_code
    location = "".join(c for c in response.location if c not in "\t\n\r").replace("\\", "/")
    return urljoin(idp.url + "/", location)


def assert_stays_on_the_idp(idp: LiveIdP, response: LiveResponse) -> None:
    target = urlsplit(destination(idp, response))
    assert (target.scheme, target.netloc) == ("http", urlsplit(idp.url).netloc), target


# -- post_logout_redirect_uri --------------------------------------------------------------------


def id_token_of(idp: LiveIdP, browser: LiveClient) -> str:
    verifier, challenge = pkce_pair()
    response = browser.get("/authorize", query_string=authorization_params(
        idp.rp.client_id, code_challenge=challenge, code_challenge_method="S256"))
    code = query_of(response.location)["code"]
    tokens = exchange_code(idp.client(), code, idp.rp.client_id, idp.rp.client_secret, verifier)
    return str(tokens.json["id_token"])


@pytest.mark.parametrize("uri", UNREGISTERED_LOGOUT_URIS.values(),
                         ids=UNREGISTERED_LOGOUT_URIS.keys())
def test_logout_with_a_valid_hint_never_redirects_to_an_unregistered_uri(
        idp: LiveIdP, uri: str) -> None:
    browser = signed_in(idp)
    response = browser.get("/logout", query_string={
        "id_token_hint": id_token_of(idp, browser), "post_logout_redirect_uri": uri})
    assert "Location" not in response.headers and response.status_code in (200, 400)
    assert ATTACKER not in response.text and f'href="{uri}' not in response.text


@pytest.mark.parametrize("uri", [ATTACKER + "/signed-out", POST_LOGOUT_REDIRECT_URI],
                         ids=["unregistered", "registered"])
def test_logout_without_a_hint_confirms_and_never_redirects(idp: LiveIdP, uri: str) -> None:
    """Without an id_token_hint nothing proves which client asks: no redirect at all."""
    from tests.security.conftest import form_of

    browser = signed_in(idp)
    page = browser.get("/logout", query_string={"post_logout_redirect_uri": uri,
                                                "client_id": idp.rp.client_id})
    assert page.status_code == 200
    form = form_of(page, "/logout")
    done = browser.post(form.action, data=form.fields)
    assert "Location" not in done.headers and done.status_code in (200, 400)


def test_logout_to_the_registered_uri_with_a_valid_hint_redirects(idp: LiveIdP) -> None:
    """The control: the exact registered URI is where the person is sent."""
    browser = signed_in(idp)
    response = browser.get("/logout", query_string={
        "id_token_hint": id_token_of(idp, browser),
        "post_logout_redirect_uri": POST_LOGOUT_REDIRECT_URI})
    assert response.status_code == 302
    assert response.location.startswith(POST_LOGOUT_REDIRECT_URI)


# -- next --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def account_browser(idp: LiveIdP) -> LiveClient:
    """A person without verification methods: /account/verify goes to `next` at once."""
    return signed_in(idp, idp.make_person(totp=False))


@pytest.mark.parametrize("payload", NEXT_PAYLOADS.values(), ids=NEXT_PAYLOADS.keys())
def test_account_verify_next_stays_on_the_idp(
        idp: LiveIdP, account_browser: LiveClient, payload: str) -> None:
    response = account_browser.get("/account/verify", query_string={"next": payload})
    assert_stays_on_the_idp(idp, response)


def test_account_verify_next_after_a_code_stays_on_the_idp(idp: LiveIdP) -> None:
    """The POST of the second factor, then the redirect to `next`."""
    person = idp.make_person()
    browser = signed_in(idp, person)
    page = browser.get("/account/verify", query_string={"next": "//attacker.example/"})
    assert page.status_code == 200
    response = answer_mfa(browser, page, totp_code(person.totp_secret or ""))
    assert_stays_on_the_idp(idp, response)


@pytest.fixture(scope="module")
def console_browser(idp: LiveIdP) -> LiveClient:
    """An administrator signed in to the console (password and authenticator app)."""
    browser = idp.client()
    signed_in_to_console(idp, browser)
    return browser


def signed_in_to_console(idp: LiveIdP, browser: LiveClient,
                         next_path: str | None = None) -> LiveResponse:
    """Sign an administrator in at /admin/sign-in; the callback's redirect."""
    with idp.context():
        staff = make_staff("admin")
        email, secret = staff.email, staff.totp_secret
        db.session.remove()
    page = open_page(browser, "/admin/sign-in", **({"next": next_path} if next_path else {}))
    page = after_password(browser, page, Person(email, ""))
    callback = browser.follow(answer_mfa(browser, page, totp_code(secret)))
    return callback


@pytest.mark.parametrize("payload", NEXT_PAYLOADS.values(), ids=NEXT_PAYLOADS.keys())
def test_console_sign_in_next_stays_on_the_idp(
        idp: LiveIdP, console_browser: LiveClient, payload: str) -> None:
    response = console_browser.get("/admin/sign-in", query_string={"next": payload})
    assert_stays_on_the_idp(idp, response)


def test_console_next_after_the_whole_sign_in_stays_on_the_idp(idp: LiveIdP) -> None:
    """`next` is kept through /authorize and used after /admin/callback."""
    browser = idp.client()
    home = signed_in_to_console(idp, browser, next_path="//attacker.example/admin/")
    assert home.status_code == 200 and urlsplit(home.url).netloc == urlsplit(idp.url).netloc
