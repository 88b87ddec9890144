"""Property tests of the authorization endpoint: whatever the parameters, a clean answer.

hypothesis draws every parameter of an authorization request (RFC 6749 4.1.1, OIDC Core
3.1.2.1, RFC 7636, OAuth 2.0 Multiple Response Types) from valid values, near misses and
junk: arbitrary unicode, control characters, bytes that are not UTF-8, huge values, a
parameter repeated with two values, sent by GET or POST, by a browser with no session and
by one already signed in (so the request runs through to the code); and the fields of the
sign-in form the request leads to. Properties:

- never a 5xx, never a stack trace or an exception's text in the body;
- a redirect goes to an IdP page or to a redirect URI registered for the client, exactly
  (RFC 9700 4.1.1; RFC 6749 4.1.2.1: never to an unverified URI); a form_post page posts
  to a registered URI only.

Runs are derandomized (the same examples every run, no example database): a failure is a
bug to fix, not a flake. The Flask test client carries the bulk; a smaller run goes over
a live server and real HTTP. `make test-postgres` runs them on PostgreSQL, which refuses
what SQLite stores (NUL characters, values longer than their column).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from urllib.parse import quote, quote_from_bytes, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from idp.db import db
from idp.models.throttle import ThrottleCounter
from tests.browser.conftest import LiveIdP, idp_host_name, live_idp  # noqa: F401
from tests.driver import hs256_jwt, id_token_for, open_login_page, pkce_pair, unsigned_jwt
from tests.factories import PASSWORD, REDIRECT_URI, make_client, make_user
from tests.html_forms import parse_forms

PUBLIC_REDIRECT_URI = "https://app.example.org/callback"
# The same examples every run; the fixtures' state is shared by all examples of a test
# (one app, one browser), which the tests allow for: each example is one request whose
# effects (a login transaction, a code) cannot change what the next example may do.
FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=200,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])
LIVE_FUZZ = settings(FUZZ, max_examples=40)

# What leaks from a crash: Python's traceback, the debugger, exception class names and
# the messages of common exceptions, driver and library module paths.
LEAKS = re.compile(
    r"Traceback \(most recent call last\)|File \"/|Werkzeug Debugger|"
    r"\b\w*(Error|Exception)\b|sqlalchemy|psycopg|sqlite3|authlib\.|joserfc\.|"
    r"object has no attribute|NoneType|invalid literal for|unsupported operand|"
    r"index out of range|codec can't"
)


def assert_clean(status: int, body: str) -> None:
    """No 5xx, no stack trace, no exception text."""
    assert status < 500, f"{status}: {body[:500]}"
    leak = LEAKS.search(body)
    assert leak is None, f"{status}: exception text {leak.group(0)!r} in {body[:500]}"


# -- what an authorization request is made of ------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """A parameter value sent as these bytes, percent-encoded (not necessarily UTF-8)."""

    data: bytes


Value = str | Raw
SERIAL = itertools.count()

JUNK: st.SearchStrategy[Value] = st.one_of(
    st.text(max_size=40),  # any unicode, controls and NUL included
    st.text(alphabet=st.characters(codec="ascii"), max_size=40),
    st.binary(max_size=24).map(Raw),  # invalid UTF-8 among them
    st.sampled_from(["", " ", "\x00", "%", "%zz", "+", "&", "=", "\r\nX-Injected: 1",
                     "../", "javascript:alert(1)", "\u202e", "\ufeff", "null", "[]", "{}",
                     "-1", "0", "1e400", "NaN", "Infinity", "9" * 40, "-" + "9" * 40]),
    st.integers(min_value=2_000, max_value=200_000).map(lambda n: "x" * n),  # huge
)


@dataclass(frozen=True)
class Parameter:
    """A parameter's good values and near misses; `core` ones are seldom left out."""

    good: tuple[Value, ...]
    near: tuple[Value, ...] = ()
    core: bool = False
    unique: bool = False  # good values get a fresh suffix (a nonce used twice is a replay)
    odds: tuple[int, int, int] | None = None  # percent below which: good, near miss, junk

    def value(self, draw: st.DrawFn) -> Value | None:
        """Good, a near miss, junk or nothing (None: left out). Usually one or two parameters
        of a request go wrong: the rest of it must be right for the checks behind to run.

        hypothesis favours small and boundary integers: good values take the low end.
        """
        roll = draw(st.integers(0, 99))
        good, near, junk = self.odds or ((88, 95, 98) if self.core else (45, 48, 50))
        if roll < good:
            if not self.good:
                return None
            value = draw(st.sampled_from(self.good))
            return f"{value}-{next(SERIAL)}" if self.unique else value
        if roll < near:
            return draw(st.sampled_from(self.near)) if self.near else None
        if roll < junk:
            return draw(JUNK)
        return None


def parameters(clients: list[tuple[str, str]],
               hints: list[str]) -> st.SearchStrategy[list[tuple[str, Value]]]:
    """Name/value pairs of one request: each parameter left out, good, a near miss or junk,
    now and then repeated with a second value (RFC 6749 3.1: invalid), in any order.

    `clients`: (client_id, its registered redirect URI); `hints`: id_token_hint values.
    """
    verifier_challenge = pkce_pair()[1]
    acr = "urn:portal-idp:acr:"
    table = {
        "response_type": Parameter(("code",), ("token", "id_token", "code id_token", "none",
                                               "id_token token", "code code", "CODE"), True),
        "scope": Parameter(("openid", "openid profile email", "openid offline_access"),
                           ("profile", "openid openid", "openid idp:admin", "email openid "),
                           True),
        "state": Parameter(("s", "a" * 500)),
        "nonce": Parameter(("n", "n" * 500), ("",), unique=True),
        "prompt": Parameter(("none", "login", "consent"),
                            ("select_account", "create", "none login", "consent none")),
        "max_age": Parameter(("0", "1", "3600"), ("-5", "1.5", " 60", "0x10", "9" * 40)),
        "code_challenge": Parameter((verifier_challenge,),
                                    (verifier_challenge[:42], "a" * 129, "=" * 43), True),
        "code_challenge_method": Parameter(("S256",), ("plain", "s256", "RS256", ""), True),
        "acr_values": Parameter((f"{acr}password", f"{acr}mfa", f"{acr}mfa {acr}password"),
                                (f"{acr}phishing-resistant", "urn:other:acr")),
        "login_hint": Parameter(("person@example.org",),
                                ("nobody@example.org", '"><script>alert(1)</script>')),
        "id_token_hint": Parameter(tuple(hints[:1]), tuple(hints[1:])),
        "request": Parameter((), (unsigned_jwt({"client_id": "x"}), "a.b.c", "a.b", ".")),
        "request_uri": Parameter((), ("urn:ietf:params:oauth:request_uri:x",
                                      "https://attacker.example/request.jwt")),
        "response_mode": Parameter(("query", "form_post"),
                                   ("fragment", "web_message", "query.jwt", "form_post.jwt")),
        "ui_locales": Parameter(("en", "fr-CA en"), ("xx-XX",)),
        "claims": Parameter((), ('{"id_token": {"acr": {"essential": true}}}', "{", "[]")),
    }
    near_uris = (REDIRECT_URI + "/", REDIRECT_URI + "?x=1", REDIRECT_URI + "#f",
                 REDIRECT_URI.upper(), "https://rp.example.org:444/callback",
                 "https://rp.example.org.attacker.example/callback",
                 "https://attacker.example@rp.example.org/callback", "//attacker.example/",
                 "https://attacker.example/callback", "http://rp.example.org/callback",
                 "https://rp.example.org/callback/../evil", "https://rp.example.org/%63allback")

    @st.composite
    def build(draw: st.DrawFn) -> list[tuple[str, Value]]:
        client_id, redirect_uri = draw(st.sampled_from(clients))
        others = tuple(c for c, _ in clients if c != client_id)
        table["client_id"] = Parameter((client_id,), others, True)
        table["redirect_uri"] = Parameter((redirect_uri,), near_uris, True)
        pairs: list[tuple[str, Value]] = []
        for name, parameter in table.items():
            value = parameter.value(draw)
            if value is None:
                continue
            pairs.append((name, value))
            if draw(st.integers(0, 39)) == 17:  # now and then (not a boundary value)
                pairs.append((name, draw(st.one_of(st.sampled_from(parameter.good or ("",)),
                                                   JUNK))))
        return draw(st.permutations(pairs))

    return build()


def encode(pairs: list[tuple[str, Value]]) -> str:
    """application/x-www-form-urlencoded, each value's bytes as given."""
    def one(value: Value) -> str:
        if isinstance(value, Raw):
            return quote_from_bytes(value.data, safe="")
        return quote(value, safe="", errors="surrogatepass")
    return "&".join(f"{name}={one(value)}" for name, value in pairs)


def registered(location: str, uris: set[str]) -> bool:
    """True when `location` is one of `uris` exactly, plus the response's query."""
    parts = urlsplit(location)
    return parts.fragment == "" and f"{parts.scheme}://{parts.netloc}{parts.path}" in uris


def assert_goes_nowhere_unregistered(status: int, location: str | None, body: str,
                                     mimetype: str, uris: set[str]) -> None:
    """Redirects and form_post pages lead to IdP pages or registered URIs only."""
    if status in (301, 302, 303, 307, 308):
        assert location, "a redirect without a Location"
        if location.startswith("/"):
            assert not location.startswith(("//", "/\\")), location  # scheme-relative
        else:
            assert registered(location, uris), f"redirected to unregistered {location}"
    if status == 200 and mimetype == "text/html":
        for form in parse_forms(body):
            if urlsplit(form.action).scheme or form.action.startswith("//"):
                assert form.method == "post" and form.action in uris, form.action


# -- the test client ---------------------------------------------------------------------------


@dataclass
class Target:
    clients: list[tuple[str, str]]  # (client_id, redirect URI)
    uris: set[str]
    hints: list[str]
    signed_in: FlaskClient  # a browser with an IdP session


@pytest.fixture
def target(app: Flask) -> Target:
    """A confidential and a public client; hints: a real ID token and forged ones."""
    rp = make_client()
    public = make_client(public=True, redirect_uris=[PUBLIC_REDIRECT_URI])
    user = make_user("person@example.org")
    assert rp.client_secret is not None
    browser = app.test_client()
    real = id_token_for(browser, rp.client.client_id, rp.client_secret, user.email)
    header, claims, _ = real.split(".")
    hints = [real, f"{header}.{claims}.", unsigned_jwt({"sub": user.sub, "aud": "x"}),
             hs256_jwt({"sub": user.sub}, b"public key bytes"), real[:-4] + "AAAA"]
    return Target([(rp.client.client_id, REDIRECT_URI),
                   (public.client.client_id, PUBLIC_REDIRECT_URI)],
                  {REDIRECT_URI, PUBLIC_REDIRECT_URI}, hints, browser)


def check_authorize(http: FlaskClient, method: str, pairs: list[tuple[str, Value]],
                    uris: set[str]) -> None:
    query = encode(pairs)
    if method == "GET":
        response = http.get("/authorize", query_string=query)
    else:
        response = http.post("/authorize", data=query,
                             content_type="application/x-www-form-urlencoded")
    body = response.get_data(as_text=True)
    assert_clean(response.status_code, body)
    assert_goes_nowhere_unregistered(response.status_code, response.headers.get("Location"),
                                     body, response.mimetype or "", uris)
    db.session.rollback()  # the next example starts from what is committed


def fuzz_authorize(target: Target, browser: FlaskClient) -> None:
    @FUZZ
    @given(method=st.sampled_from(["GET", "POST"]),
           pairs=parameters(target.clients, target.hints))
    def run(method: str, pairs: list[tuple[str, Value]]) -> None:
        check_authorize(browser, method, pairs, target.uris)

    run()


def test_authorization_requests_without_a_session_get_clean_answers(
    app: Flask, target: Target,
) -> None:
    fuzz_authorize(target, app.test_client())


def test_authorization_requests_with_a_session_get_clean_answers(target: Target) -> None:
    # Signed in, requests that pass validation run through to the code (or the error).
    fuzz_authorize(target, target.signed_in)


# -- the sign-in page the request leads to ----------------------------------------------------

CSRF = "<the page's CSRF token>"  # a stand-in, replaced by the token of the example's page


def sign_in_fields() -> st.SearchStrategy[list[tuple[str, Value]]]:
    """The password page's form: each field good, a near miss, junk, absent or repeated."""
    often = (50, 85, 98)  # a small form: near misses and junk often
    table = {
        "csrf_token": Parameter((CSRF,), ("", "x" * 43), True),
        "step": Parameter(("password",), ("consent", "mfa_challenge", "nope"), True),
        "email": Parameter(("person@example.org",), (
            "nobody@example.org", "PERSON@example.org ", "a" * 400 + "@example.org",
            "person@example.org\x00", "agent42"), odds=often),
        "password": Parameter((PASSWORD,), ("wrong password, long enough", "", "x" * 2000),
                              odds=often),
        "keep_signed_in": Parameter(("yes",), ("no", "on")),
        "credential": Parameter((), ('{"id": "x"}', "{", "[]", '{"id": "AAAA", "rawId": '
                                     '"AAAA", "type": "public-key", "response": {}}')),
        "action": Parameter((), ("allow", "deny")),
    }

    @st.composite
    def build(draw: st.DrawFn) -> list[tuple[str, Value]]:
        pairs: list[tuple[str, Value]] = []
        for name, parameter in table.items():
            value = parameter.value(draw)
            if value is not None:
                pairs.append((name, value))
                if draw(st.integers(0, 39)) == 17:
                    pairs.append((name, draw(JUNK)))
        return draw(st.permutations(pairs))

    return build()


def test_sign_in_form_submissions_get_clean_answers(app: Flask, target: Target) -> None:
    client_id = target.clients[0][0]
    _, challenge = pkce_pair()

    @settings(FUZZ, max_examples=150)
    @given(fields=sign_in_fields())
    def run(fields: list[tuple[str, Value]]) -> None:
        forget_failures()  # each example a first attempt: throttling has its own tests
        browser = app.test_client()
        page = open_login_page(browser, client_id, code_challenge=challenge,
                               code_challenge_method="S256")
        form = parse_forms(page.get_data(as_text=True))[0]
        token = form.fields["csrf_token"]
        data = [(k, v.replace(CSRF, token) if isinstance(v, str) else v) for k, v in fields]
        response = browser.post(form.action, data=encode(data),
                                content_type="application/x-www-form-urlencoded")
        body = response.get_data(as_text=True)
        assert_clean(response.status_code, body)
        assert_goes_nowhere_unregistered(response.status_code, response.headers.get("Location"),
                                         body, response.mimetype or "", target.uris)
        db.session.rollback()

    run()


def forget_failures() -> None:
    """Clear the throttle's counters (one example's failures must not slow the next)."""
    db.session.execute(delete(ThrottleCounter))
    db.session.commit()


# -- over real HTTP ---------------------------------------------------------------------------


def test_authorization_requests_over_http_get_clean_answers(live_idp: LiveIdP) -> None:  # noqa: F811
    with live_idp.app.app_context():
        clients = [(make_client().client.client_id, REDIRECT_URI)]
        make_user("person@example.org")
        db.session.remove()
    browser = requests.Session()
    url = f"{live_idp.url}/authorize"

    @LIVE_FUZZ
    @given(method=st.sampled_from(["GET", "POST"]), pairs=parameters(clients, ["a.b.c"]))
    def run(method: str, pairs: list[tuple[str, Value]]) -> None:
        query = encode(pairs)
        if method == "GET":
            response = browser.get(f"{url}?{query}", allow_redirects=False, timeout=30)
        else:
            response = browser.post(url, data=query, allow_redirects=False, timeout=30, headers={
                "Content-Type": "application/x-www-form-urlencoded"})
        location = response.headers.get("Location")
        if location and location.startswith(live_idp.url + "/"):
            location = location[len(live_idp.url):]  # an IdP page, as an absolute URL
        assert_clean(response.status_code, response.text)
        mimetype = response.headers.get("Content-Type", "").split(";")[0]
        assert_goes_nowhere_unregistered(response.status_code, location, response.text,
                                         mimetype, {REDIRECT_URI})

    run()
