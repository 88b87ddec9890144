"""Load generator: drives one scenario against a running IdP for a fixed time, prints JSON.

Run as its own process (`python -m bench.load SCENARIO ...`) so its CPU is never counted
as the server's. Loopback only; every loop is bounded by the duration and stops itself.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ACTION = re.compile(r'<form method="post" action="([^"]+)"')
METHOD = re.compile(r'name="method" value="([^"]+)"')


@dataclass
class Target:
    url: str
    client_id: str
    client_secret: str
    redirect_uri: str
    service_id: str
    service_secret: str
    users: list[dict[str, str]]
    # The TOTP scenario: a client whose portal requires MFA, people with an authenticator app.
    mfa_client_id: str = ""
    mfa_client_secret: str = ""
    mfa_users: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, seconds: float | None, error: str | None = None) -> None:
        with self.lock:
            if error is None and seconds is not None:
                self.latencies.append(seconds)
            else:
                self.errors += 1
                self.first_error = self.first_error or error


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def _expect(response: requests.Response, status: int, what: str) -> requests.Response:
    if response.status_code != status:
        raise RuntimeError(f"{what}: HTTP {response.status_code} {response.text[:200]}")
    return response


def sign_in(target: Target, user: dict[str, str], with_totp: bool = False) -> dict[str, Any]:
    """authorize -> sign-in page -> POST -> (TOTP page -> POST) -> code -> token -> userinfo,
    like a browser: the last form answers with the redirect to the client."""
    browser = requests.Session()
    verifier, challenge = pkce()
    client_id, client_secret = ((target.mfa_client_id, target.mfa_client_secret) if with_totp
                                else (target.client_id, target.client_secret))
    params = {
        "response_type": "code", "client_id": client_id,
        "redirect_uri": target.redirect_uri, "scope": "openid email profile",
        "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge, "code_challenge_method": "S256",
    }
    page = _expect(browser.get(f"{target.url}/authorize", params=params, timeout=30), 200,
                   "sign-in page")
    response = browser.post(
        urljoin(page.url, _match(ACTION, page.text)),
        data={"csrf_token": _match(CSRF, page.text),
              "step": "password", "email": user["email"], "password": user["password"]},
        allow_redirects=False, timeout=30,
    )
    _expect(response, 303, "password POST")
    if with_totp:
        import pyotp  # only the MFA scenario needs it

        response = _expect(browser.get(urljoin(page.url, response.headers["Location"]),
                                       allow_redirects=False, timeout=30), 200, "TOTP page")
        code = pyotp.TOTP(user["totp_secret"]).now()
        response = _expect(browser.post(
            response.url, data={"csrf_token": _match(CSRF, response.text),
                                "step": "mfa_challenge", "code": code,
                                "method": _match(METHOD, response.text)},
            allow_redirects=False, timeout=30), 303, "TOTP POST")
    # The last form answers with the authorization response itself (303 to the client).
    if not response.headers["Location"].startswith(target.redirect_uri + "?"):
        raise RuntimeError(f"not sent to the client: {response.headers['Location']}")
    code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
    token = _expect(requests.post(
        f"{target.url}/token", headers=basic(client_id, client_secret),
        data={"grant_type": "authorization_code", "code": code,
              "redirect_uri": target.redirect_uri, "code_verifier": verifier}, timeout=30,
    ), 200, "token").json()
    _expect(requests.get(f"{target.url}/userinfo", timeout=30,
                         headers={"Authorization": f"Bearer {token['access_token']}"}),
            200, "userinfo")
    return token  # type: ignore[no-any-return]


def _match(pattern: re.Pattern[str], text: str) -> str:
    found = pattern.search(text)
    if found is None:
        raise RuntimeError(f"no {pattern.pattern!r} in the page: {text[:200]}")
    return found.group(1)


class Worker(threading.Thread):
    """One virtual user looping over a scenario until the deadline."""

    def __init__(self, scenario: str, target: Target, index: int, stats: Stats,
                 stride: int = 1) -> None:
        super().__init__(daemon=True)
        self.scenario, self.target, self.index = scenario, target, index
        # Worker i takes people i, i+stride, ...: when their number is a multiple of the
        # stride (bench.run's 2,000 TOTP people and 4 workers), no two workers share a
        # person, and a TOTP person comes back only after the others (a code works once).
        self.stride = stride
        self.deadline, self.stats = 0.0, stats
        self.http = requests.Session()
        self.state: dict[str, Any] = {}

    def prepare(self) -> None:
        """Set-up outside the measured window (a token to refresh, use or introspect)."""
        if self.scenario in ("refresh", "userinfo", "introspection"):
            user = self.target.users[self.index % len(self.target.users)]
            self.state["token"] = sign_in(self.target, user)

    def run(self) -> None:
        t, state = self.target, self.state
        people = t.mfa_users if self.scenario == "totp_sign_in" else t.users
        n = 0
        while time.monotonic() < self.deadline:
            n += 1
            started = time.perf_counter()
            try:
                self.once(state, t, people[(self.index + n * self.stride) % len(people)])
            except Exception as exc:  # counted, never fatal: errors must be visible as 0
                self.stats.record(None, f"{type(exc).__name__}: {exc}"[:300])
            else:
                self.stats.record(time.perf_counter() - started)

    def once(self, state: dict[str, Any], t: Target, user: dict[str, str]) -> None:
        if self.scenario == "password_sign_in":
            sign_in(t, user)
        elif self.scenario == "totp_sign_in":
            sign_in(t, user, with_totp=True)
        elif self.scenario == "client_credentials":
            _expect(self.http.post(f"{t.url}/token", headers=basic(t.service_id, t.service_secret),
                                   data={"grant_type": "client_credentials"}, timeout=30),
                    200, "client_credentials")
        elif self.scenario == "refresh":
            state["token"] = _expect(self.http.post(
                f"{t.url}/token", headers=basic(t.client_id, t.client_secret),
                data={"grant_type": "refresh_token",
                      "refresh_token": state["token"]["refresh_token"]}, timeout=30,
            ), 200, "refresh").json()
        elif self.scenario == "userinfo":
            _expect(self.http.get(f"{t.url}/userinfo", timeout=30, headers={
                "Authorization": f"Bearer {state['token']['access_token']}"}), 200, "userinfo")
        elif self.scenario == "introspection":
            body = _expect(self.http.post(
                f"{t.url}/introspect", headers=basic(t.client_id, t.client_secret),
                data={"token": state["token"]["access_token"]}, timeout=30,
            ), 200, "introspection").json()
            if not body.get("active"):
                raise RuntimeError("introspection: token not active")
        elif self.scenario == "discovery":
            _expect(self.http.get(f"{t.url}/.well-known/openid-configuration", timeout=30),
                    200, "discovery")
            _expect(self.http.get(f"{t.url}/jwks", timeout=30), 200, "jwks")
        else:
            raise ValueError(self.scenario)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario")
    parser.add_argument("--target", required=True, help="JSON file describing the target")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    with open(args.target) as handle:
        target = Target(**json.load(handle))
    assert urlsplit(target.url).hostname in ("127.0.0.1", "localhost"), "loopback only"
    stats = Stats()
    workers = [Worker(args.scenario, target, i, stats, stride=args.concurrency)
               for i in range(args.concurrency)]
    for worker in workers:
        worker.prepare()
    # Handshake: the orchestrator snapshots server CPU between READY and GO.
    print("READY", file=sys.stderr, flush=True)
    sys.stdin.readline()
    start = time.monotonic()
    for worker in workers:
        worker.deadline = start + args.duration
        worker.start()
    for worker in workers:
        worker.join(timeout=args.duration + 60)
    elapsed = time.monotonic() - start
    json.dump({"scenario": args.scenario, "elapsed": elapsed, "ops": len(stats.latencies),
               "latencies": stats.latencies, "errors": stats.errors,
               "first_error": stats.first_error}, sys.stdout)


if __name__ == "__main__":
    main()
