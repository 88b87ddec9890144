"""Several nodes: separate IdP processes under gunicorn over one PostgreSQL database share
sign-ins, tokens, sessions and rate limits; gunicorn's workers share their metrics.

The two-node test needs PostgreSQL (IDP_TEST_DATABASE_URL, `make test-postgres`) and is
skipped without it, except under IDP_REQUIRE_POSTGRES=1 (CI's PostgreSQL run), where a
missing server is a failure.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from idp import create_app
from idp.db import db
from idp.storage import initialise
from tests.conftest import ENCRYPTION_KEY, make_settings
from tests.databases import ON_POSTGRES
from tests.factories import PASSWORD, REDIRECT_URI, make_client, make_user
from tests.html_forms import parse_forms

ROOT = Path(__file__).resolve().parent.parent
POST_LOGOUT = "https://rp.example.org/signed-out"
GUNICORN = Path(sys.executable).with_name("gunicorn")


def require_postgres() -> None:
    if ON_POSTGRES:
        return
    if os.environ.get("IDP_REQUIRE_POSTGRES") == "1":
        pytest.fail("IDP_REQUIRE_POSTGRES=1 but IDP_TEST_DATABASE_URL names no PostgreSQL")
    pytest.skip("needs PostgreSQL: set IDP_TEST_DATABASE_URL (make test-postgres)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Node:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    """Wait (at most 60 s) until `process` answers /healthz at `url`; fail with its log."""
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited: {log.read_text()[-2000:]}")
        try:
            if requests.get(f"{url}/healthz", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)


@contextmanager
def gunicorn_node(port: int, environment: dict[str, str], log: Path) -> Iterator[Node]:
    """`make serve-prod`'s gunicorn (2 workers) on `port`, until the block ends."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("IDP_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(environment, IDP_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="2")
    command = [str(GUNICORN)] if GUNICORN.exists() else [sys.executable, "-m", "gunicorn"]
    with log.open("wb") as output:
        process = subprocess.Popen([*command, "-c", "python:idp.ops.gunicorn_conf", "wsgi:app"],
                                   cwd=ROOT, env=env, stdout=output, stderr=output)
    node = Node(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_healthy(node.url, process, log, "gunicorn")
        yield node
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def node_environment(instance: Path, issuer: str, database_url: str) -> dict[str, str]:
    """One configuration for every node: production, the same secrets, one database."""
    environment = {
        "IDP_SERVER__ENVIRONMENT": "production",
        "IDP_SERVER__ISSUER": issuer,
        "IDP_SERVER__INSTANCE_PATH": str(instance),
        "IDP_SERVER__SECRET_KEY": "the same secret on every node",
        "IDP_SECURITY__ENCRYPTION_KEYS": ENCRYPTION_KEY,
        "IDP_SECURITY__ARGON2_TIME_COST": "1",
        "IDP_SECURITY__ARGON2_MEMORY_KIB": "1024",
    }
    if database_url:
        environment["IDP_DATABASE__URL"] = database_url
    return environment


def prepare_database(instance: Path, issuer: str) -> dict[str, str]:
    """`idp init` and a person and a client, in-process; the database URL and the ids."""
    app = create_app(make_settings(instance, server={"issuer": issuer}))
    initialise(app)
    with app.app_context():
        user = make_user()
        rp = make_client(post_logout_redirect_uris=[POST_LOGOUT])
        prepared = {"email": user.email, "client_id": rp.client.client_id,
                    "client_secret": rp.client_secret or "",
                    "database_url": app.extensions["idp"].settings.database.url}
        db.session.remove()
        db.engine.dispose()
    return prepared


def through_idp(browser: requests.Session, response: requests.Response) -> requests.Response:
    """Follow redirects while they stay on an IdP node; stop at the client's redirect."""
    for _ in range(10):
        location = response.headers.get("Location", "")
        target = urljoin(response.url, location)
        if response.status_code not in (302, 303) or not target.startswith("http://127.0.0.1"):
            return response
        response = browser.get(target, allow_redirects=False, timeout=10)
    raise AssertionError("redirect loop")


def authorize(browser: requests.Session, node: str, client_id: str) -> requests.Response:
    response = browser.get(f"{node}/authorize", allow_redirects=False, timeout=10, params={
        "client_id": client_id, "response_type": "code", "redirect_uri": REDIRECT_URI,
        "scope": "openid email offline_access", "state": "s", "nonce": secrets.token_urlsafe(8)})
    return through_idp(browser, response)


def submit_password(browser: requests.Session, page: requests.Response, email: str,
                    password: str) -> requests.Response:
    form = parse_forms(page.text)[0]
    response = browser.post(urljoin(page.url, form.action), allow_redirects=False, timeout=10,
                            data={**form.fields, "email": email, "password": password})
    return through_idp(browser, response)


def code_of(response: requests.Response) -> str:
    assert response.status_code in (302, 303), response.text[:500]
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert "code" in query, response.headers["Location"]
    return query["code"][0]


def token(node: str, prepared: dict[str, str], **data: str) -> requests.Response:
    return requests.post(f"{node}/token", data=data, timeout=10,
                         auth=(prepared["client_id"], prepared["client_secret"]))


def test_two_nodes_share_sign_ins_tokens_sessions_and_rate_limits(tmp_path):
    require_postgres()
    port_a, port_b = free_port(), free_port()
    issuer = f"http://127.0.0.1:{port_a}"  # in production: the load balancer's URL
    prepared = prepare_database(tmp_path / "instance", issuer)
    environment = node_environment(tmp_path / "instance", issuer, prepared["database_url"])
    with ExitStack() as nodes:
        a = nodes.enter_context(gunicorn_node(port_a, environment, tmp_path / "a.log")).url
        b = nodes.enter_context(gunicorn_node(port_b, environment, tmp_path / "b.log")).url
        assert requests.get(f"{a}/readyz", timeout=10).status_code == 200
        assert requests.get(f"{b}/readyz", timeout=10).status_code == 200
        browser = requests.Session()

        # Sign in through A; the code is redeemed at B.
        page = authorize(browser, a, prepared["client_id"])
        assert page.status_code == 200 and 'name="password"' in page.text
        code = code_of(submit_password(browser, page, prepared["email"], PASSWORD))
        tokens = token(b, prepared, grant_type="authorization_code", code=code,
                       redirect_uri=REDIRECT_URI)
        assert tokens.status_code == 200, tokens.text
        first = tokens.json()

        # Refresh through B, then again through A; userinfo at either.
        refreshed = token(b, prepared, grant_type="refresh_token",
                          refresh_token=first["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text
        again = token(a, prepared, grant_type="refresh_token",
                      refresh_token=refreshed.json()["refresh_token"])
        assert again.status_code == 200, again.text
        access = again.json()["access_token"]
        for node in (a, b):
            info = requests.get(f"{node}/userinfo", timeout=10,
                                headers={"Authorization": f"Bearer {access}"})
            assert info.status_code == 200 and info.json()["email"] == prepared["email"]

        # The browser's session is shared: B signs it in without a password.
        assert code_of(authorize(browser, b, prepared["client_id"]))

        # Rate limits are shared: failures at A and B count against one account.
        attacker = requests.Session()
        refused = None
        for attempt in range(12):
            node = (a, b)[attempt % 2]
            page = authorize(attacker, node, prepared["client_id"])
            refused = submit_password(attacker, page, "victim@example.org", f"guess {attempt}")
            if "Too many attempts" in refused.text:
                break
        assert refused is not None and "Too many attempts" in refused.text
        assert attempt >= 5  # five free failures, counted across both nodes

        # Logout through B ends the session everywhere: A asks for the password again.
        out = browser.get(f"{b}/logout", allow_redirects=False, timeout=10, params={
            "id_token_hint": first["id_token"], "post_logout_redirect_uri": POST_LOGOUT})
        assert out.status_code in (302, 303) and out.headers["Location"].startswith(POST_LOGOUT)
        page = authorize(browser, a, prepared["client_id"])
        assert page.status_code == 200 and 'name="password"' in page.text

        # The code was single-use across nodes (and its replay revokes what it gave).
        assert token(a, prepared, grant_type="authorization_code", code=code,
                     redirect_uri=REDIRECT_URI).status_code == 400
        metrics = requests.get(f"{b}/metrics", timeout=10).text
    assert 'idp_tokens_issued_total{grant_type="authorization_code"} 1.0' in metrics
    for log in ("a.log", "b.log"):
        text = (tmp_path / log).read_text()
        assert PASSWORD not in text and first["refresh_token"] not in text and code not in text


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


def test_gunicorn_workers_add_up_their_metrics_whichever_answers_the_scrape(tmp_path):
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    prepared = prepare_database(tmp_path / "instance", issuer)
    environment = node_environment(tmp_path / "instance", issuer, prepared["database_url"])
    with gunicorn_node(port, environment, tmp_path / "node.log") as node:

        def healthz_count() -> float:
            text = requests.get(f"{node.url}/metrics", timeout=10,
                                headers={"Connection": "close"}).text
            return sample(text, "idp_http_requests_total", endpoint="ops.healthz",
                          status="200")

        before = healthz_count()  # the start-up probe's requests
        for _ in range(30):  # a new connection each: the workers take turns
            assert requests.get(f"{node.url}/healthz", timeout=10,
                                headers={"Connection": "close"}).ok
        counts = {healthz_count() for _ in range(6)}
    assert counts == {before + 30}
