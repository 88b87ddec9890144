"""Response headers and cookies: clickjacking, referrer leaks, cookie theft, CORS.

- every hosted page forbids framing (CSP `frame-ancestors 'none'` and `X-Frame-Options:
  DENY`) and sniffing, and sends no referrer (`Referrer-Policy: no-referrer`), which
  matters most on pages whose URL or body carries a code, a link token or recovery codes;
- the session and trusted-browser cookies are `HttpOnly` and `SameSite=Lax`; with an
  https issuer (behind a TLS-terminating proxy) also `Secure` with the `__Host-` prefix,
  and every response has HSTS;
- the authorization and logout endpoints answer no CORS request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from requests.structures import CaseInsensitiveDict

from tests.driver import authorization_params, shows_step, with_totp
from tests.factories import make_client
from tests.security.conftest import (
    ACR_MFA,
    ATTACKER,
    LiveClient,
    LiveIdP,
    LiveResponse,
    after_password,
    enrol_totp,
    furnish,
    login_page,
    mfa_page,
    open_page,
    signed_in,
    start_idp,
    submit,
)


@dataclass
class Site:
    idp: LiveIdP
    third_party: str  # a client that asks for consent


@pytest.fixture(scope="module")
def site(idp: LiveIdP) -> Site:
    with idp.context():
        third = make_client(first_party=False, portal_slug=idp.portal_slug)
    return Site(idp, third.client.client_id)


def signed_in_with_mfa(site: Site) -> LiveClient:
    """The person (a new one, with TOTP) signed in with MFA just now: a fresh second factor."""
    from tests.driver import sign_in

    person = site.idp.make_person()
    browser = site.idp.client()
    sign_in(browser, site.idp.rp.client_id, person.email,
            mfa=with_totp(browser, person.totp_secret or ""), acr_values=ACR_MFA)
    return browser


def reset_link(site: Site) -> str:
    browser = site.idp.client()
    person = site.idp.make_person(totp=False)
    page = open_page(browser, "/reset", portal=site.idp.portal_slug)
    submit(browser, page, email=person.email)
    return site.idp.link_sent_to(person.email)


def register_link(site: Site) -> str:
    browser = site.idp.client()
    email = f"new-{id(browser)}@example.org"
    page = open_page(browser, "/register", portal=site.idp.portal_slug)
    submit(browser, page, email=email, name="New Person")
    return site.idp.link_sent_to(email, "/register/")


def expect(response: LiveResponse, status: int, marker: str) -> LiveResponse:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert marker in response.text, response.text[:500]
    return response


# Every hosted page, reached the way a person reaches it; each builder checks it got there.
PAGES: dict[str, Callable[[Site], LiveResponse]] = {
    "authorize-error": lambda s: expect(s.idp.client().get(
        "/authorize", query_string={"client_id": "unknown", "response_type": "code"}),
        400, "not valid"),
    "sign-in": lambda s: expect(login_page(s.idp, s.idp.client()), 200, 'value="password"'),
    "transaction-expired": lambda s: expect(s.idp.client().get("/login/not-a-transaction"),
                                            400, "expired"),
    "mfa-challenge": lambda s: expect(mfa_page(s.idp, s.idp.make_person())[1], 200,
                                      'value="mfa_challenge"'),
    "mfa-enrol": lambda s: expect(mfa_page(s.idp, s.idp.make_person(totp=False))[1], 200,
                                  'value="mfa_enroll"'),
    "mfa-enrol-recovery-codes": lambda s: enrol_totp(
        *mfa_page(s.idp, s.idp.make_person(totp=False)))[0],
    "consent": lambda s: expect(after_password(
        b := s.idp.client(), login_page(s.idp, b, s.third_party), s.idp.person), 200,
        'value="consent"'),
    "reset": lambda s: expect(open_page(s.idp.client(), "/reset", portal=s.idp.portal_slug),
                              200, 'name="email"'),
    "reset-sent": lambda s: expect(submit(
        b := s.idp.client(), open_page(b, "/reset", portal=s.idp.portal_slug),
        email="nobody@example.org"), 200, "nobody@example.org"),
    "set-password-link": lambda s: expect(s.idp.client().get(reset_link(s)), 200,
                                          'name="password"'),
    "unknown-link": lambda s: expect(s.idp.client().get("/password/not-a-token"), 404, "link"),
    "register": lambda s: expect(open_page(s.idp.client(), "/register",
                                           portal=s.idp.portal_slug), 200, 'name="name"'),
    "register-sent": lambda s: expect(submit(
        b := s.idp.client(), open_page(b, "/register", portal=s.idp.portal_slug),
        email="someone.new@example.org", name="Someone"), 200, "someone.new@example.org"),
    "register-link": lambda s: expect(s.idp.client().get(register_link(s)), 200,
                                      'name="password"'),
    "account": lambda s: expect(signed_in(s.idp).get("/account"), 200, "recovery"),
    "account-signed-out": lambda s: expect(s.idp.client().get("/account"), 401, "sign"),
    "account-verify": lambda s: expect(signed_in(s.idp).get("/account/verify"), 200,
                                       'name="code"'),
    "account-add": lambda s: expect(
        signed_in(s.idp, s.idp.make_person(totp=False)).get("/account/add"), 200,
        "Authenticator app"),
    "account-new-recovery-codes": lambda s: expect(new_recovery_codes(signed_in_with_mfa(s)),
                                                   200, "recovery"),
    "logout-confirmation": lambda s: expect(signed_in(s.idp).get("/logout"), 200,
                                            'name="confirm"'),
    "logged-out": lambda s: expect(submit(b := signed_in(s.idp), b.get("/logout")), 200,
                                   "signed out"),
    "form-post-response": lambda s: expect(signed_in(s.idp).get(
        "/authorize", query_string=authorization_params(s.idp.rp.client_id,
                                                        response_mode="form_post")),
        200, 'name="code"'),
    "not-found": lambda s: expect(s.idp.client().get("/no-such-page"), 404, "not found"),
    "dev-mailbox": lambda s: expect(s.idp.client().get("/dev/mailbox"), 200, "ailbox"),
    "admin-signed-out": lambda s: expect(s.idp.client().get("/admin/signed-out"), 200,
                                         "signed out"),
}


def new_recovery_codes(browser: LiveClient) -> LiveResponse:
    """POST "Get new recovery codes" on /account (after a fresh MFA): the codes, once."""
    from tests.html_forms import parse_forms

    account = browser.get("/account")
    [form] = [f for f in parse_forms(account.text) if f.action.endswith("/recovery-codes")]
    return browser.post(form.action, data=form.fields)


@pytest.mark.parametrize("name", PAGES)
def test_hosted_page_cannot_be_framed_and_sends_no_referrer(site: Site, name: str) -> None:
    headers = PAGES[name](site).headers
    policy = {d.strip().split(" ", 1)[0]: d.strip() for d in
              headers["Content-Security-Policy"].split(";")}
    assert policy["frame-ancestors"] == "frame-ancestors 'none'"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in headers["Cache-Control"]


def test_the_redirect_carrying_a_code_sends_no_referrer(site: Site) -> None:
    response = signed_in(site.idp).get("/authorize", query_string=authorization_params(
        site.idp.rp.client_id))
    assert response.status_code == 302 and "code=" in response.location
    assert response.headers["Referrer-Policy"] == "no-referrer"


# -- cookies ----------------------------------------------------------------------------------


def set_cookies(response: LiveResponse) -> dict[str, CaseInsensitiveDict[str]]:
    """name -> attributes (lower-case names; flags map to "") of each Set-Cookie header."""
    found: dict[str, CaseInsensitiveDict[str]] = {}
    for header in response.raw.raw.headers.getlist("Set-Cookie"):
        first, *attributes = [part.strip() for part in header.split(";")]
        name = first.split("=", 1)[0]
        found[name] = CaseInsensitiveDict(
            {a.split("=", 1)[0]: (a.split("=", 1) + [""])[1] for a in attributes})
    return found


def trusting_sign_in(idp: LiveIdP, browser: LiveClient) -> LiveResponse:
    """Pass MFA with "Trust this browser": the response that sets the device cookie."""
    from tests.driver import answer_mfa, totp_code

    person = idp.make_person()
    _, page = mfa_page(idp, person, browser)
    assert shows_step(page, "mfa_challenge")
    return answer_mfa(browser, page, totp_code(person.totp_secret or ""), trust_hours="24")


def test_cookies_are_httponly_and_samesite_lax(idp: LiveIdP) -> None:
    session = set_cookies(idp.client().get("/authorize", query_string=authorization_params(
        idp.rp.client_id)))["idp_session"]
    device = set_cookies(trusting_sign_in(idp, idp.client()))["idp_device"]
    for cookie in (session, device):
        assert "httponly" in cookie and cookie["samesite"].lower() == "lax"
        assert "domain" not in cookie  # this host only


@pytest.fixture(scope="module")
def https_idp(tmp_path_factory, template_database) -> Iterator[LiveIdP]:
    """The IdP with an https issuer behind one TLS-terminating proxy (X-Forwarded-Proto)."""
    with start_idp(tmp_path_factory, template_database, issuer_scheme="https",
                   server={"trusted_proxy_hops": 1}) as live:
        yield furnish(live)


def test_with_https_cookies_are_secure_host_prefixed_httponly_and_lax(
        https_idp: LiveIdP) -> None:
    browser = https_idp.client(behind_tls=True)
    first = browser.get("/authorize", query_string=authorization_params(https_idp.rp.client_id))
    cookies = {**set_cookies(first), **set_cookies(trusting_sign_in(https_idp, browser))}
    assert set(cookies) == {"__Host-idp", "__Host-idp-device"}
    for cookie in cookies.values():
        assert "secure" in cookie and "httponly" in cookie
        assert cookie["samesite"].lower() == "lax"
        # RFC 6265bis 4.1.3.2: __Host- cookies have Path=/ and no Domain.
        assert cookie["path"] == "/" and "domain" not in cookie


def test_with_https_every_response_has_hsts(https_idp: LiveIdP) -> None:
    browser = https_idp.client(behind_tls=True)
    for path in ("/authorize", "/.well-known/openid-configuration", "/no-such-page", "/reset"):
        hsts = browser.get(path).headers.get("Strict-Transport-Security", "")
        assert "max-age=" in hsts and int(hsts.split("max-age=")[1].split(";")[0]) >= 31536000


def test_plain_http_development_sends_no_hsts(idp: LiveIdP) -> None:
    assert "Strict-Transport-Security" not in idp.client().get("/reset").headers


# -- CORS -------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "OPTIONS"])
@pytest.mark.parametrize("path", ["/authorize", "/logout"])
def test_no_cors_on_the_authorization_and_logout_endpoints(
        idp: LiveIdP, path: str, method: str) -> None:
    """A script on another origin can neither read these answers nor be allowed to ask."""
    browser = signed_in(idp)
    headers = {"Origin": ATTACKER, "Access-Control-Request-Method": "GET",
               "Access-Control-Request-Headers": "authorization"}
    params = authorization_params(idp.rp.client_id) if path == "/authorize" else {}
    if method == "GET":
        response = browser.get(path, query_string=params, headers=headers)
    elif method == "POST":
        response = browser.post(path, data=params, headers=headers)
    else:
        response = browser.options(path, headers=headers)
    assert not [h for h in response.headers if h.lower().startswith("access-control-")]
