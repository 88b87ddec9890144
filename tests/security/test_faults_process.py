"""Fault: the server process is killed in the middle of someone's sign-in.

Two IdP processes (`idp serve`, production settings) share one database (a SQLite file,
or PostgreSQL in the suite's PostgreSQL run), as two nodes behind a load balancer would.
A browser starts signing in on process A; A is killed with SIGKILL (no clean shutdown, no
chance to save anything); the same browser, with the same cookies, goes on at process B.
Login transactions live in the database, not in a process's memory, so the sign-in
resumes where it was. When A dies while it checks the password:

- before it reads the request (A stopped, then killed): the attempt is lost, B shows the
  password page again;
- as it commits: the password step counted. If A's answer got out, B finishes the
  sign-in; if not, the cookie with the new browser id A gave the sign-in (the session
  fixation defence) died with it, and B shows the clear "This sign-in has expired" page:
  the person starts again.

Never a 500, and the code B issues redeems.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.factories import PASSWORD, REDIRECT_URI
from tests.html_forms import parse_forms
from tests.security.test_fuzz_authorize import LEAKS
from tests.test_nodes import (
    authorize,
    code_of,
    free_port,
    node_environment,
    prepare_database,
    through_idp,
    token,
    wait_healthy,
)

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 10


@dataclass
class Process:
    url: str
    popen: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish or save anything."""
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)


def spawn(environment: dict[str, str], log: Path) -> Process:
    """Start `idp serve` on a free port (ready once `wait_ready` returns)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("IDP_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(environment)
    with log.open("ab") as output:
        popen = subprocess.Popen(
            [sys.executable, "-m", "idp", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=output, stderr=output)
    return Process(f"http://127.0.0.1:{port}", popen, log)


def wait_ready(process: Process) -> None:
    wait_healthy(process.url, process.popen, process.log, "idp serve")


@contextmanager
def two_processes(environment: dict[str, str], folder: Path) -> Iterator[tuple[Process, Process]]:
    """Processes A and B on one database, started side by side (each takes seconds)."""
    a, b = spawn(environment, folder / "a.log"), spawn(environment, folder / "b.log")
    try:
        wait_ready(a)
        wait_ready(b)
        yield a, b
    finally:
        for process in (a, b):
            if process.popen.poll() is None:
                process.popen.kill()
                process.popen.wait(timeout=10)


@pytest.fixture
def shared(tmp_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """One database (SQLite, or the test's PostgreSQL one) with a person and a client;
    the processes' configuration."""
    instance = tmp_path / "instance"
    # The issuer is the load balancer's URL in production; here simply a fixed one.
    issuer = "http://127.0.0.1:9"
    prepared = prepare_database(instance, issuer)
    return prepared, node_environment(instance, issuer, prepared["database_url"])


def assert_clean(response: requests.Response) -> None:
    """Not a crash: no 5xx, no stack trace or exception text."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    leak = LEAKS.search(response.text)
    assert leak is None, (leak.group(0), response.text[:500])


def post_form(browser: requests.Session, base_url: str, page: requests.Response,
              **values: str) -> requests.Response:
    """Submit the page's form to the process at `base_url` (another node than the page's)."""
    form = parse_forms(page.text)[0]
    assert form.action.startswith("/"), form.action
    response = browser.post(f"{base_url}{form.action}", data={**form.fields, **values},
                            allow_redirects=False, timeout=TIMEOUT)
    assert_clean(response)
    return through_idp(browser, response)


def assert_code_redeems(prepared: dict[str, str], url: str, response: requests.Response) -> None:
    assert_clean(response)
    code = code_of(response)
    tokens = token(url, prepared, grant_type="authorization_code", code=code,
                   redirect_uri=REDIRECT_URI)
    assert tokens.status_code == 200 and tokens.json()["id_token"], tokens.text


def test_a_sign_in_started_on_a_killed_process_resumes_on_another(
    tmp_path: Path, shared: tuple[dict[str, str], dict[str, str]],
) -> None:
    prepared, environment = shared
    with two_processes(environment, tmp_path) as (a, b):
        browser = requests.Session()
        page = authorize(browser, a.url, prepared["client_id"])
        assert page.status_code == 200 and 'name="password"' in page.text
        a.kill()
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{a.url}/healthz", timeout=2)  # A is gone

        # The same browser, the same page's form, sent to B.
        done = post_form(browser, b.url, page, email=prepared["email"], password=PASSWORD)
        assert done.headers.get("Location", "").startswith(REDIRECT_URI), done.text[:300]
        assert_code_redeems(prepared, b.url, done)


def signed_in_at(database_url: str, tx_id: str) -> bool:
    """Whether the transaction's password step has been committed (read from outside)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(
                text("SELECT authenticated_at FROM login_transactions WHERE id = :id"),
                {"id": tx_id}).scalar() is not None
    finally:
        engine.dispose()


@pytest.mark.parametrize("moment", ["before-it-reads", "as-it-commits"])
def test_a_process_killed_while_checking_the_password_loses_nothing_but_that_attempt(
    tmp_path: Path, shared: tuple[dict[str, str], dict[str, str]], moment: str,
) -> None:
    prepared, environment = shared
    database_url = prepared["database_url"] or f"sqlite:///{tmp_path / 'instance/idp.sqlite3'}"
    with two_processes(environment, tmp_path) as (a, b):
        browser = requests.Session()
        page = authorize(browser, a.url, prepared["client_id"])
        form = parse_forms(page.text)[0]
        tx_id = form.action.rsplit("/", 1)[-1]

        def sign_in_at_a() -> None:
            try:
                # Its answer (a 303 and new cookies) is kept; the redirect is followed at B.
                browser.post(f"{a.url}{form.action}", timeout=TIMEOUT, allow_redirects=False,
                             data={**form.fields, "email": prepared["email"],
                                   "password": PASSWORD})
            except requests.RequestException:
                pass  # A died before it answered: the browser shows a network error

        attempt = threading.Thread(target=sign_in_at_a)
        if moment == "before-it-reads":
            a.popen.send_signal(signal.SIGSTOP)  # the request waits in the socket, unread
            attempt.start()
            time.sleep(0.2)
        else:
            attempt.start()
            deadline = time.monotonic() + TIMEOUT
            while not signed_in_at(database_url, tx_id) and time.monotonic() < deadline:
                pass  # kill at the first sight of the commit: the answer may be under way
        a.kill()
        attempt.join(timeout=TIMEOUT)

        # The person reloads the sign-in page, now served by B.
        again = browser.get(f"{b.url}{form.action}", allow_redirects=False, timeout=TIMEOUT)
        assert_clean(again)
        again = through_idp(browser, again)
        if moment == "before-it-reads":
            assert not signed_in_at(database_url, tx_id)
        else:
            assert signed_in_at(database_url, tx_id)
        if again.status_code == 302:  # A's answer and its cookies made it out in time
            assert moment == "as-it-commits"
            assert_code_redeems(prepared, b.url, again)
            return
        if again.status_code == 400:
            # A moved the sign-in to a new browser id: either that cookie died with A's
            # answer, or A's answer (the code for the client) made it out and finished it.
            assert moment == "as-it-commits"
            assert "This sign-in has expired" in again.text, again.text[:500]
            page = authorize(browser, b.url, prepared["client_id"])
            if page.status_code == 302:  # A's answer and its session cookie made it out
                assert_code_redeems(prepared, b.url, page)
                return
        else:
            assert moment == "before-it-reads"
            page = again  # the attempt was lost: the password page, as before
        assert page.status_code == 200 and 'name="password"' in page.text, page.text[:500]
        done = post_form(browser, b.url, page, email=prepared["email"], password=PASSWORD)
        assert_code_redeems(prepared, b.url, done)
