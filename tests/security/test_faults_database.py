"""Fault: the database goes away under load and comes back (PostgreSQL).

The IdP runs as in production (gunicorn, 2 sync workers; tests/test_nodes.py) on a
database of its own. Threads sign in and redeem codes, and complete registrations, while
the database "restarts" three times.

How the restart is made: every backend of the IdP's database is terminated
(`pg_terminate_backend`, which sends the clients the same error a shutting-down server
sends, SQLSTATE 57P01) while the database refuses new connections for a moment
(`ALTER DATABASE ... ALLOW_CONNECTIONS false`, as a server that is starting up). A real
`pg_ctlcluster restart` would do the same to this database, and would also kill every
other database on the server: other test runs, other developers' work, CI jobs sharing
it. Stopping only our own database's connections gives the IdP the same experience and
disturbs nobody.

What must hold: each request succeeds or fails cleanly (503 with Retry-After and a page
or a JSON error saying to try again; never a stack trace); the server recovers by itself
(every later request succeeds, idle pooled connections included: the pool pings them);
and no account is half written (a registration cut off leaves no user, or a complete
one: password, verified email, its contact and the link used).

Needs PostgreSQL (IDP_TEST_DATABASE_URL, `make test-postgres`); skipped on SQLite, a
failure under IDP_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import requests
from sqlalchemy.engine import make_url

from idp import create_app
from idp.account.links import issue_link
from idp.account.register import PURPOSE as REGISTRATION
from idp.db import db
from idp.models import ActionLink, Contact, User
from idp.portals import create_portal, update_portal
from tests.conftest import make_settings
from tests.databases import registry
from tests.factories import PASSWORD, REDIRECT_URI
from tests.html_forms import parse_forms
from tests.security.test_fuzz_authorize import LEAKS
from tests.test_nodes import (
    authorize,
    free_port,
    gunicorn_node,
    node_environment,
    prepare_database,
    require_postgres,
    submit_password,
)

OUTAGES = 3
OUTAGE_SECONDS = 0.8
REGISTRATIONS = 60
NEW_PASSWORD = "tulips under a violet winter sky"
TIMEOUT = 20


@dataclass
class Outcomes:
    """What the load saw: counts by kind, and whatever was not clean."""

    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, problem: str | None = None) -> None:
        with self.lock:
            self.counts[kind] += 1
            if problem:
                self.problems.append(problem)


def failed_cleanly(response: requests.Response) -> str | None:
    """None when `response` is a clean "try again": else what is wrong with it."""
    body = response.text
    leak = LEAKS.search(body)
    if leak:
        return f"{response.status_code} {response.url}: {leak.group(0)!r} in {body[:300]}"
    if response.status_code == 503 and response.headers.get("Retry-After"):
        return None
    if 400 <= response.status_code < 500:
        return None  # e.g. "This sign-in has expired": a clear page, start again
    return f"{response.status_code} {response.url}: not a clean failure: {body[:300]}"


class Load:
    """Sign-ins with token requests, and registrations, from threads, until stopped."""

    def __init__(self, url: str, prepared: dict[str, str], links: list[str]) -> None:
        self.url, self.prepared, self.links = url, prepared, list(links)
        self.outcomes = Outcomes()
        self.stop = threading.Event()

    def step(self, response: requests.Response, expected: bool, what: str) -> bool:
        """Record one answer; True when the flow may go on."""
        if expected:
            return True
        self.outcomes.add(f"{what} failed", failed_cleanly(response))
        return False

    def sign_in_and_redeem(self) -> None:
        browser = requests.Session()
        page = authorize(browser, self.url, self.prepared["client_id"])
        if not self.step(page, page.status_code == 200 and 'name="password"' in page.text,
                         "authorize"):
            return
        back = submit_password(browser, page, self.prepared["email"], PASSWORD)
        location = back.headers.get("Location", "")
        if not self.step(back, back.status_code in (302, 303) and location.startswith(REDIRECT_URI)
                         and "code=" in location, "password"):
            return
        code = location.split("code=")[1].split("&")[0]
        tokens = requests.post(f"{self.url}/token", timeout=TIMEOUT, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
            auth=(self.prepared["client_id"], self.prepared["client_secret"]))
        if tokens.status_code != 200:
            self.outcomes.add("token failed", None if tokens.headers.get(
                "Content-Type", "").startswith("application/json") and not LEAKS.search(
                tokens.text) and tokens.status_code in (400, 503) else
                f"token {tokens.status_code}: {tokens.text[:300]}")
            return
        self.outcomes.add("signed in")

    def register(self, token: str) -> None:
        browser = requests.Session()
        page = browser.get(f"{self.url}/register/{token}", timeout=TIMEOUT)
        if not self.step(page, page.status_code == 200 and 'name="password"' in page.text,
                         "registration page"):
            return
        form = parse_forms(page.text)[0]
        done = browser.post(urljoin(page.url, form.action), allow_redirects=False,
                            timeout=TIMEOUT, data={**form.fields, "password": NEW_PASSWORD})
        if self.step(done, done.status_code == 303, "registration"):
            self.outcomes.add("registered")

    def run(self, work: str) -> None:
        while not self.stop.is_set():
            try:
                if work == "sign-in":
                    self.sign_in_and_redeem()
                else:
                    with self.outcomes.lock:
                        token = self.links.pop() if self.links else None
                    if token is None:
                        return
                    self.register(token)
            except requests.RequestException as exc:  # a dropped connection is no answer
                self.outcomes.add("connection error", f"{work}: {type(exc).__name__}: {exc}")

    @contextmanager
    def running(self) -> Iterator[Outcomes]:
        threads = [threading.Thread(target=self.run, args=(work,), daemon=True)
                   for work in ("sign-in", "sign-in", "sign-in", "registration")]
        for thread in threads:
            thread.start()
        try:
            yield self.outcomes
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(timeout=60)


@contextmanager
def database_down(name: str) -> Iterator[None]:
    """Refuse new connections to `name` and cut every open one, until the block ends."""
    admin = registry.server.admin
    admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    try:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        yield
    finally:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def prepare_registrations(instance: Path, issuer: str) -> list[str]:
    """A portal open to self-registration, and registration links for new emails."""
    app = create_app(make_settings(instance, server={"issuer": issuer}))
    with app.app_context():
        portal = create_portal("grace", "Grace Church")
        update_portal(portal.slug, {"self_registration": "create"})
        tokens = [issue_link(REGISTRATION, f"new{n}@example.org", 7, portal=portal,
                             data={"name": f"New Person {n}"})[1] for n in range(REGISTRATIONS)]
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return tokens


def check_accounts(instance: Path, issuer: str) -> dict[str, int]:
    """Every registration link is unused with no account, or used with a complete one."""
    app = create_app(make_settings(instance, server={"issuer": issuer}))
    seen = Counter[str]()
    with app.app_context():
        links = db.session.execute(
            db.select(ActionLink).filter_by(purpose=REGISTRATION)).scalars().all()
        for link in links:
            user = db.session.execute(
                db.select(User).filter_by(email=link.email)).scalar_one_or_none()
            if link.used_at is None:
                assert user is None, f"an account for {link.email} but its link is unused"
                seen["not registered"] += 1
                continue
            assert user is not None, f"{link.email}: link used, no account"
            assert user.password_hash and user.email_verified, f"{link.email}: half written"
            contact = db.session.execute(
                db.select(Contact).filter_by(user_id=user.id)).scalar_one_or_none()
            assert contact is not None, f"{link.email}: no contact"
            seen["registered"] += 1
        db.session.remove()
        db.engine.dispose()
    return dict(seen)


def assert_serves(url: str, prepared: dict[str, str], attempts: int = 20) -> None:
    """A fresh sign-in and token request succeed, on the first try of each worker."""
    for _ in range(attempts):
        ready = requests.get(f"{url}/readyz", timeout=TIMEOUT, headers={"Connection": "close"})
        assert ready.status_code == 200, ready.text
    load = Load(url, prepared, [])
    for _ in range(4):
        load.sign_in_and_redeem()
    assert load.outcomes.counts == Counter({"signed in": 4}), load.outcomes


def test_requests_fail_cleanly_while_the_database_restarts_and_no_account_is_half_written(
    tmp_path: Path,
) -> None:
    require_postgres()
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    instance = tmp_path / "instance"
    prepared = prepare_database(instance, issuer)
    links = prepare_registrations(instance, issuer)
    name = make_url(prepared["database_url"]).database
    assert name
    environment = node_environment(instance, issuer, prepared["database_url"])
    with gunicorn_node(port, environment, tmp_path / "node.log") as node:
        # Idle: every worker holds pooled connections; cut them while nobody is asking.
        assert_serves(node.url, prepared)
        with database_down(name):
            pass
        assert_serves(node.url, prepared)  # the pool replaced them unseen

        # Under load: three outages while sign-ins and registrations run.
        load = Load(node.url, prepared, links)
        refused: list[int] = []
        with load.running() as outcomes:
            time.sleep(1)
            for _ in range(OUTAGES):
                with database_down(name):
                    time.sleep(OUTAGE_SECONDS / 2)
                    refused.append(requests.get(f"{node.url}/readyz", timeout=TIMEOUT,
                                                headers={"Connection": "close"}).status_code)
                    time.sleep(OUTAGE_SECONDS / 2)
                time.sleep(1)
        # The outages were seen, and nothing answered them with a crash.
        assert refused == [503] * OUTAGES
        assert outcomes.problems == [], outcomes.problems[:5]
        assert outcomes.counts["signed in"] > 0, outcomes.counts
        assert sum(n for kind, n in outcomes.counts.items() if "failed" in kind) > 0, (
            "no request met an outage: the test proved nothing", outcomes.counts)

        # Recovered: every worker's next requests succeed.
        assert_serves(node.url, prepared)
    accounts = check_accounts(instance, issuer)
    assert accounts.get("registered", 0) > 0, accounts
