"""The demo of `make run`: its launcher and Ctrl-C, the portals' settings, their logout checks.

The walk-through itself runs in a browser: tests/browser/test_walkthrough.py.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from clients import common, members_portal, ministry_portal, mls_portal
from idp.demo import MEMBERS, MINISTRY, MLS
from tests.driver import open_login_page
from tests.factories import make_client
from tests.smtp_server import free_port
from tests.test_cli import cli_environment

ROOT = Path(__file__).resolve().parent.parent
BANNER = "Portal IdP demo (Ctrl-C stops everything)"


def test_each_portal_is_configured_for_the_client_the_idp_seeds() -> None:
    for spec, module in ((MLS, mls_portal), (MEMBERS, members_portal),
                         (MINISTRY, ministry_portal)):
        assert (module.CLIENT_ID, module.CLIENT_SECRET) == (spec.client_id, spec.client_secret)
        assert module.BASE_URL == spec.base_url
        assert module.ISSUER == "http://127.0.0.1:5000"
    assert members_portal.PORTAL_SLUG == MEMBERS.slug


def test_the_clients_package_imports_nothing_from_the_idp() -> None:
    """The portals are relying parties like any other: discovery only, no shortcuts."""
    for path in (ROOT / "clients").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert "from idp" not in source and "import idp" not in source, path.name


# -- make run: the launcher ---------------------------------------------------------------------


@pytest.fixture
def launched(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[int], queue.Queue[str]]]:
    """`python -m clients.run_demo` on free ports, in its own process group (a terminal's)."""
    ports = [free_port() for _ in range(4)]
    process = subprocess.Popen(
        [sys.executable, "-m", "clients.run_demo", "--idp-port", str(ports[0]),
         "--portal-ports", ",".join(map(str, ports[1:]))],
        cwd=ROOT, env=cli_environment(tmp_path / "instance"), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield process, ports, lines
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        reader.join(timeout=5)
        assert process.stdout is not None
        process.stdout.close()


def wait_for_line(lines: queue.Queue[str], text: str, timeout: float = 60) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"no {text!r} within {timeout} s:\n{''.join(seen)}")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_make_run_starts_the_idp_and_three_portals_and_ctrl_c_stops_them_all(launched) -> None:
    process, ports, lines = launched
    seen = wait_for_line(lines, BANNER)
    wait_for_line(lines, "Demo accounts:", timeout=5)
    idp_url = f"http://127.0.0.1:{ports[0]}"
    discovery = requests.get(f"{idp_url}/.well-known/openid-configuration", timeout=5)
    assert discovery.json()["issuer"] == idp_url
    for port in ports[1:]:
        portal = f"http://127.0.0.1:{port}"
        assert requests.get(portal, timeout=5).status_code == 200
        sign_in = requests.get(f"{portal}/login", timeout=5, allow_redirects=False)
        assert sign_in.headers["Location"].startswith(f"{idp_url}/authorize?"), seen

    # Ctrl-C: the terminal sends SIGINT to its foreground process group.
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=20) == 0
    deadline = time.monotonic() + 10
    while group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not group_alive(process.pid), "a process of the demo outlived Ctrl-C"
    assert not any(listening(port) for port in ports)
    wait_for_line(lines, "stopped the IdP and the demo portals", timeout=5)


# -- the development mailbox, one click from the sign-in page -----------------------------------


@pytest.fixture(params=["development", "production"])
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    return {"server": {"environment": request.param}}


def test_sign_in_page_links_the_development_mailbox_in_development_only(app, http) -> None:
    rp = make_client()
    page = open_login_page(http, rp.client.client_id).get_data(as_text=True)
    assert "<h1>Sign in</h1>" in page
    shown = 'href="/dev/mailbox">Development mailbox</a> (email and text messages)' in page
    assert shown == app.config["IDP_DEVELOPMENT"]
    assert (http.get("/dev/mailbox").status_code == 200) == app.config["IDP_DEVELOPMENT"]


# -- back-channel logout tokens, as a portal checks them ------------------------------------------

SETTINGS = common.PortalSettings("http://127.0.0.1:5002", "http://idp.test", "members-only",
                                 "secret")
EVENT: dict[str, Any] = {common.BACKCHANNEL_EVENT: {}}


@pytest.fixture
def signing_key(monkeypatch: pytest.MonkeyPatch) -> RSAKey:
    """A key the IdP's JWKS (fetched by the portal) publishes."""
    key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    published = KeySet([key]).as_dict(private=False)

    class Answer:
        def json(self) -> Any:
            return published

    monkeypatch.setattr(common.requests, "get", lambda url, timeout: Answer())
    return key


def logout_token(key: RSAKey, typ: str = "logout+jwt", **changes: Any) -> str:
    claims = {"iss": SETTINGS.issuer, "aud": SETTINGS.client_id, "iat": int(time.time()),
              "jti": "j1", "sid": "s1", "sub": "u1", "events": EVENT}
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": "RS256", "kid": "k1", "typ": typ}, claims, key)


def test_a_valid_logout_token_names_the_session_to_end(signing_key: RSAKey) -> None:
    claims = common.check_logout_token(logout_token(signing_key), SETTINGS, "http://idp.test/jwks")
    assert claims["sid"] == "s1"


@pytest.mark.parametrize(("changes", "error"), [
    ({"iss": "http://elsewhere.test"}, "iss"),
    ({"aud": "another-portal"}, "aud"),
    ({"iat": int(time.time()) - 3600}, "iat"),
    ({"iat": None}, "iat"),
    ({"exp": int(time.time()) - 10}, "exp"),
    ({"events": {"http://schemas.openid.net/event/other": {}}}, "events"),
    ({"sid": None, "sub": None}, "neither sid nor sub"),
    ({"nonce": "n"}, "nonce"),
    ({"typ": "JWT"}, "typ"),
])
def test_a_portal_refuses_a_logout_token_that_breaks_a_rule(
    signing_key: RSAKey, changes: dict[str, Any], error: str
) -> None:
    typ = changes.pop("typ", "logout+jwt")
    with pytest.raises(ValueError, match=error):
        common.check_logout_token(logout_token(signing_key, typ, **changes), SETTINGS,
                                  "http://idp.test/jwks")


def test_a_signin_ends_when_its_session_or_its_person_is_logged_out() -> None:
    store = common.SessionStore()
    first = store.add(common.SignIn({"sub": "u1", "sid": "s1"}, "id-token"))
    second = store.add(common.SignIn({"sub": "u1", "sid": "s2"}, "id-token"))
    other = store.add(common.SignIn({"sub": "u2", "sid": "s3"}, "id-token"))
    store.end("s1", "u1", time.time())
    assert store.get(first) is None and store.get(second) is not None
    store.end(None, "u1", time.time())  # a token without sid: every session of the person
    assert store.get(second) is None and store.get(other) is not None
