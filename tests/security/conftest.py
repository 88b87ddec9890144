"""The attack suite's target: a live IdP over real HTTP, and an attacker's HTTP client.

`idp` (one per test module) is a live server on 127.0.0.1 with a portal, a confidential
first-party client (`idp.rp`, redirect URI tests/factories.REDIRECT_URI), a public client
(`idp.public`) and a person with a password and an authenticator app (`idp.person`).
Other modules build a differently configured server with `start_idp(...)`.

`LiveClient` is a browser or an attacker's script: a `requests` session that speaks the
few methods of Flask's test client that tests/driver.py uses, so the same flows
(`sign_in`, `submit_form`, `exchange_code`, ...) run over real HTTP here.

Throttling counters are forgotten before each test (one test's failures must not slow
the next); tests about throttling make their own failures.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import delete

from idp import create_app
from idp.db import db
from idp.models import OutboxMessage, User
from idp.models.throttle import ThrottleCounter
from idp.portals import create_portal, update_portal
from tests.conftest import make_settings
from tests.databases import ON_POSTGRES, TemplateDatabase, registry
from tests.driver import follow_to_client, submit_form
from tests.factories import PASSWORD, REDIRECT_URI, make_client, make_mfa_method, make_user
from tests.html_forms import Form, parse_forms
from tests.live import serve

ATTACKER = "https://attacker.example"
PUBLIC_REDIRECT_URI = "https://app.example.org/callback"
POST_LOGOUT_REDIRECT_URI = "https://rp.example.org/signed-out"
TIMEOUT = 15
_databases = itertools.count(1)


# -- an HTTP client with the face of Flask's test client ------------------------------------


class LiveResponse:
    """A `requests` response seen through the attributes tests/driver.py reads."""

    def __init__(self, response: requests.Response) -> None:
        self.raw = response
        self.status_code = response.status_code
        self.headers = response.headers
        self.text = response.text
        self.url = response.url

    @property
    def location(self) -> str:
        return str(self.headers.get("Location", ""))

    @property
    def json(self) -> Any:
        try:
            return self.raw.json()
        except ValueError:
            return None

    @property
    def mimetype(self) -> str:
        return str(self.headers.get("Content-Type", "")).split(";")[0].strip()

    def get_data(self, as_text: bool = False) -> Any:
        return self.text if as_text else self.raw.content


class LiveClient:
    """A browser (or an attacker's script) on the live IdP: one cookie jar, no redirects
    followed unless asked (`follow`).

    `behind_tls`: the browser speaks https to a proxy that forwards plain HTTP with
    `X-Forwarded-Proto: https` (an IdP with an https issuer and `trusted_proxy_hops`).
    """

    def __init__(self, base_url: str, headers: dict[str, str] | None = None,
                 behind_tls: bool = False) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers.update(headers or {})
        self.behind_tls = behind_tls
        if behind_tls:
            self.session.headers["X-Forwarded-Proto"] = "https"

    def url(self, path: str) -> str:
        return path if "://" in path else self.base_url + path

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        headers = dict(headers or {})
        if self.behind_tls and self.session.cookies:
            # The browser sends its `Secure` cookies over https to the proxy; requests would
            # keep them from this plain-HTTP hop, so they are written out here.
            headers["Cookie"] = "; ".join(f"{c.name}={c.value}" for c in self.session.cookies)
        return headers

    def get(self, path: str, query_string: Any = None,
            headers: dict[str, str] | None = None) -> LiveResponse:
        return LiveResponse(self.session.get(self.url(path), params=query_string,
                                             headers=self._headers(headers),
                                             allow_redirects=False, timeout=TIMEOUT))

    def post(self, path: str, data: Any = None, headers: dict[str, str] | None = None,
             query_string: Any = None) -> LiveResponse:
        return LiveResponse(self.session.post(self.url(path), data=data, params=query_string,
                                              headers=self._headers(headers),
                                              allow_redirects=False, timeout=TIMEOUT))

    def options(self, path: str, headers: dict[str, str] | None = None) -> LiveResponse:
        return LiveResponse(self.session.options(self.url(path), headers=self._headers(headers),
                                                 allow_redirects=False, timeout=TIMEOUT))

    def follow(self, response: LiveResponse) -> LiveResponse:
        """Follow redirects that stay on the IdP (relative or on its origin)."""
        for _ in range(10):
            location = response.location
            if location.startswith(self.base_url + "/"):
                location = location[len(self.base_url):]
            if response.status_code not in (301, 302, 303, 307) or not location.startswith("/"):
                return response
            response = self.get(location)
        raise AssertionError("redirect loop")

    @property
    def cookies(self) -> dict[str, str]:
        return dict(self.session.cookies.items())

    def set_cookies(self, cookies: dict[str, str]) -> None:
        """Replace the jar's cookies (a cookie planted by someone else, or an old copy)."""
        self.session.cookies.clear()
        for name, value in cookies.items():
            self.session.cookies.set(name, value, domain="127.0.0.1", path="/")


# -- the live IdP ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    email: str
    sub: str
    password: str = PASSWORD
    totp_secret: str | None = None


@dataclass(frozen=True)
class Registered:
    client_id: str
    client_secret: str | None
    redirect_uri: str


@dataclass
class LiveIdP:
    url: str
    app: Flask
    portal_slug: str = ""
    rp: Registered = field(default_factory=lambda: Registered("", None, ""))
    public: Registered = field(default_factory=lambda: Registered("", None, ""))
    person: Person = field(default_factory=lambda: Person("", ""))

    def context(self) -> AbstractContextManager[Any]:
        """An app context on the live server's database (to set up data, or look)."""
        return self.app.app_context()

    def client(self, behind_tls: bool = False, **headers: str) -> LiveClient:
        """A fresh browser without cookies."""
        return LiveClient(self.url, headers, behind_tls)

    def make_person(self, totp: bool = True, **kwargs: Any) -> Person:
        """A new person with a password (and an authenticator app unless `totp=False`)."""
        with self.context():
            user = make_user(**kwargs)
            secret = make_mfa_method(user, "totp")[1] if totp else None
            person = Person(user.email, user.sub, kwargs.get("password", PASSWORD), secret)
            db.session.remove()
        return person

    def messages_to(self, recipient: str) -> list[str]:
        """The text of every message queued for `recipient`, newest first."""
        with self.context():
            rows = db.session.scalars(
                db.select(OutboxMessage).filter_by(recipient=recipient)
                .order_by(OutboxMessage.id.desc())).all()
            texts = [row.body_text for row in rows]
            db.session.remove()
        return texts

    def link_sent_to(self, recipient: str, path: str = "/password/") -> str:
        """The path of the newest emailed link under `path` (a reset, invitation, ...)."""
        for text in self.messages_to(recipient):
            found = re.search(re.escape(self.url + path) + r"[A-Za-z0-9_\-]+", text)
            if found:
                return found.group(0)[len(self.url):]
        raise AssertionError(f"no {path} link was sent to {recipient}")

    def code_sent_to(self, recipient: str) -> str:
        """The newest 6-digit code sent to `recipient` (email or text message)."""
        for text in self.messages_to(recipient):
            found = re.search(r"\b(\d{6})\b", text)
            if found:
                return found.group(1)
        raise AssertionError(f"no code was sent to {recipient}")


@contextmanager
def start_idp(tmp_path_factory: pytest.TempPathFactory, template_database: TemplateDatabase,
              issuer_scheme: str = "http", **sections: dict[str, Any]) -> Iterator[LiveIdP]:
    """A live IdP on its own copy of the migrated database, until the block ends.

    The database outlives single tests (tests/databases.py resets the per-test ones), so
    on PostgreSQL it is a database of its own, dropped at the end.
    """
    instance = tmp_path_factory.mktemp("security") / "instance"
    dropped: list[str] = []
    if ON_POSTGRES:
        name = registry.server.create(f"security{next(_databases)}",
                                      template=registry.template_name)
        dropped.append(name)
        sections = {**sections, "database": {"url": registry.server.url_of(name)}}
    else:
        template_database.copy_to(instance)
    built: dict[str, Flask] = {}

    def build(url: str) -> Flask:
        issuer = url.replace("http://", f"{issuer_scheme}://", 1)
        server = {**sections.get("server", {}), "issuer": issuer}
        built["app"] = create_app(make_settings(Path(instance), **{**sections,
                                                                  "server": server}))
        return built["app"]

    try:
        with serve(build) as url:
            yield LiveIdP(url, built["app"])
            with built["app"].app_context():
                db.session.remove()
                db.engine.dispose()
    finally:
        for name in dropped:
            registry.server.drop(name)


def furnish(idp: LiveIdP, **policy: str) -> LiveIdP:
    """Add the portal (with `policy`), its two clients and a person with TOTP."""
    with idp.context():
        portal = create_portal("lakeside", "Lakeside MLS")
        if policy:
            update_portal(portal.slug, policy)
        rp = make_client(portal_slug=portal.slug, grant_types=[
            "authorization_code", "refresh_token"], scopes=[
            "openid", "profile", "email", "offline_access"],
            post_logout_redirect_uris=[POST_LOGOUT_REDIRECT_URI])
        public = make_client(portal_slug=portal.slug, public=True,
                             redirect_uris=[PUBLIC_REDIRECT_URI])
        idp.portal_slug = portal.slug
        idp.rp = Registered(rp.client.client_id, rp.client_secret, REDIRECT_URI)
        idp.public = Registered(public.client.client_id, None, PUBLIC_REDIRECT_URI)
        db.session.remove()
    idp.person = idp.make_person()
    return idp


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory,
        template_database: TemplateDatabase) -> Iterator[LiveIdP]:
    """The module's live IdP: portal "lakeside" (self-registration open), two clients, a
    person with a password and TOTP."""
    with start_idp(tmp_path_factory, template_database) as live:
        yield furnish(live, self_registration="create")


@pytest.fixture(autouse=True)
def _forget_failures(request: pytest.FixtureRequest) -> None:
    """Each test starts with no failure counted (the module's server is shared)."""
    if "idp" not in request.fixturenames:
        return
    live = request.getfixturevalue("idp")
    if not isinstance(live, LiveIdP):
        return
    with live.context():
        db.session.execute(delete(ThrottleCounter))
        db.session.commit()
        db.session.remove()


@pytest.fixture
def browser(idp: LiveIdP) -> LiveClient:
    """A fresh browser on the module's IdP."""
    return idp.client()


def signed_in(idp: LiveIdP, person: Person | None = None, **params: Any) -> LiveClient:
    """A browser in which `person` (default: the module's) has signed in at `idp.rp`."""
    from tests.driver import sign_in

    person = person or idp.person
    browser = idp.client()
    sign_in(browser, idp.rp.client_id, person.email, person.password, **params)
    return browser


def open_page(browser: LiveClient, path: str, **query: str) -> LiveResponse:
    """GET `path` and follow the IdP's own redirects to the page shown."""
    return follow_to_client(browser, browser.get(path, query_string=query or None))


def submit(browser: LiveClient, page: LiveResponse, **values: str) -> LiveResponse:
    """POST the first form of `page` with `values` (tests/driver.submit_form, over HTTP)."""
    return submit_form(browser, page, **values)


# -- flows the modules share ------------------------------------------------------------------

ACR_MFA = "urn:portal-idp:acr:mfa"


def login_page(idp: LiveIdP, browser: LiveClient, client_id: str | None = None,
               **params: Any) -> LiveResponse:
    """Start a sign-in at `client_id` (default: idp.rp) and return the first hosted page."""
    from tests.driver import authorization_params

    query = authorization_params(client_id or idp.rp.client_id, **params)
    page = open_page(browser, "/authorize", **query)
    assert page.status_code == 200, (page.status_code, page.location)
    return page


def after_password(browser: LiveClient, page: LiveResponse, person: Person) -> LiveResponse:
    """Enter `person`'s email and password on the sign-in page; the next page shown."""
    return follow_to_client(browser, submit(browser, page, email=person.email,
                                            password=person.password))


def mfa_page(idp: LiveIdP, person: Person, browser: LiveClient | None = None,
             **params: Any) -> tuple[LiveClient, LiveResponse]:
    """A browser that passed the password step of a sign-in asking for MFA, and the MFA
    page it shows (the challenge, or enrolment for a person without a method)."""
    browser = browser or idp.client()
    page = login_page(idp, browser, acr_values=ACR_MFA, **params)
    return browser, after_password(browser, page, person)


def enrol_totp(browser: LiveClient, page: LiveResponse) -> tuple[LiveResponse, str]:
    """From the enrolment page: choose the authenticator app and confirm a code.

    Returns the page shown after (the recovery codes) and the seed the app holds.
    """
    from tests.driver import shown_totp_secret, totp_code

    if 'name="kind" value="totp"' not in page.text or 'class="secret"' not in page.text:
        page = submit(browser, page, kind="totp", action="choose")
    secret = shown_totp_secret(page)
    done = submit(browser, page, code=totp_code(secret), action="verify", trust_hours="0")
    assert done.status_code == 200 and "recovery" in done.text.lower(), done.text[:300]
    return done, secret


def add_legacy_portal(idp: LiveIdP, slug: str = "oldmls") -> Registered:
    """A portal whose people still have agent-assigned usernames (moved to email at once),
    and its first-party client."""
    with idp.context():
        portal = create_portal(slug, "Old MLS")
        client = make_client(portal_slug=portal.slug)
        registered = Registered(client.client.client_id, client.client_secret, REDIRECT_URI)
        db.session.remove()
    return registered


def add_legacy_account(idp: LiveIdP, username: str, email: str,
                       slug: str = "oldmls") -> None:
    """Import one legacy account (bcrypt hash of tests/legacy.LEGACY_PASSWORD)."""
    from idp.portals import find_portal
    from tests.legacy import import_rows, legacy_row

    with idp.context():
        portal = find_portal(slug)
        assert portal is not None
        report = import_rows(portal, legacy_row(username, email))
        assert not report.errors, report.errors
        db.session.remove()


def form_of(page: LiveResponse, action_contains: str = "") -> Form:
    """The first form of `page` whose action contains `action_contains`."""
    forms = [f for f in parse_forms(page.text) if action_contains in f.action]
    assert forms, f"no form posting to *{action_contains}* on the page"
    return forms[0]


def add_method(idp: LiveIdP, person: Person, kind: str, destination: str | None = None) -> None:
    """Give `person` a confirmed "email" or "sms" method (codes go to `destination`)."""
    with idp.context():
        user = db.session.execute(db.select(User).filter_by(email=person.email)).scalar_one()
        make_mfa_method(user, kind, destination)
        db.session.remove()


def recovery_codes_of(idp: LiveIdP, person: Person) -> list[str]:
    """New recovery codes for `person` (what they saved when setting up MFA)."""
    from idp.mfa.recovery import generate_recovery_codes

    with idp.context():
        user = db.session.execute(db.select(User).filter_by(email=person.email)).scalar_one()
        codes = generate_recovery_codes(user)
        db.session.remove()
    return codes
