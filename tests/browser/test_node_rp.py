"""A second, independent OIDC client library as relying party: Node's openid-client.

clients/node-rp/server.mjs (installed from its lockfile by the `node_packages` fixture)
signs a person in through the browser with the code flow and PKCE; openid-client validates
the ID token and the authorization response's `iss`, calls userinfo, refreshes, and logs
out (RP-Initiated Logout). Nothing here depends on authlib being on both ends.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, Request, expect

from idp.login.transaction import ACR_PASSWORD
from tests.browser.conftest import DESKTOP, NODE_RP, Auditor, LiveIdP, Person, Viewport
from tests.factories import make_client

CLIENT_ID = "node-rp"


@pytest.fixture(params=[DESKTOP], ids=lambda viewport: viewport.name)
def viewport(request: pytest.FixtureRequest) -> Viewport:
    """The protocol does not depend on the screen: the desktop is enough here."""
    return request.param  # type: ignore[no-any-return]


@dataclass
class NodeRP:
    url: str


@pytest.fixture
def node_rp(node_packages: Path, live_idp: LiveIdP) -> Iterator[NodeRP]:
    """The Node relying party on a free port, registered as a confidential client."""
    secret = secrets.token_urlsafe(32)
    process = subprocess.Popen(
        ["node", "server.mjs"], cwd=NODE_RP, text=True,
        env={**os.environ, "ISSUER": live_idp.url, "CLIENT_ID": CLIENT_ID,
             "CLIENT_SECRET": secret, "PORT": "0"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()  # "listening on <url>", or EOF if node failed
        if not first.startswith("listening on "):
            process.wait(timeout=5)
            pytest.fail(f"node-rp did not start: {first}{process.stderr.read()}", pytrace=False)
        url = first.split()[-1]
        with live_idp.app.app_context():
            make_client(name="Node RP", client_id=CLIENT_ID, client_secret=secret,
                        redirect_uris=[f"{url}/callback"],
                        post_logout_redirect_uris=[f"{url}/signed-out"])
        yield NodeRP(url)
    finally:
        process.terminate()
        process.wait(timeout=5)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def json_of(page: Page) -> dict[str, Any]:
    """The JSON the Node RP answered (Chromium shows it as text)."""
    return json.loads(page.locator("body").inner_text())  # type: ignore[no-any-return]


def test_openid_client_signs_in_with_pkce_then_userinfo_refresh_and_logout(
    page: Page, live_idp: LiveIdP, node_rp: NodeRP, person: Person, audit: Auditor
) -> None:
    authorize: list[str] = []

    def remember(request: Request) -> None:
        if request.url.startswith(f"{live_idp.url}/authorize"):
            authorize.append(request.url)

    page.on("request", remember)

    # Code flow with PKCE through the browser, at the IdP's hosted sign-in page.
    page.goto(f"{node_rp.url}/login")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    audit(page)
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(node_rp.url)}/callback\?"))
    signed_in = json_of(page)
    assert "error" not in signed_in, signed_in
    request = {k: v[0] for k, v in parse_qs(urlsplit(authorize[0]).query).items()}
    assert request["code_challenge_method"] == "S256" and len(request["code_challenge"]) == 43
    assert request["client_id"] == CLIENT_ID and request["nonce"] and request["state"]

    # openid-client validated the ID token (signature, iss, aud, nonce, exp) before this.
    claims, userinfo = signed_in["claims"], signed_in["userinfo"]
    assert claims["iss"] == live_idp.url and claims["sub"] == person.sub
    assert CLIENT_ID in (claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]])
    assert claims["acr"] == ACR_PASSWORD and claims["amr"] == ["pwd"] and claims["sid"]
    assert userinfo["sub"] == person.sub and userinfo["email"] == person.email
    assert signed_in["refresh_token"] is True

    # Single sign-on: a second sign-in needs no password.
    page.goto(f"{node_rp.url}/login")
    expect(page).to_have_url(re.compile(rf"^{re.escape(node_rp.url)}/callback\?"))
    assert json_of(page)["claims"]["sub"] == person.sub

    # Refresh: a new access token and a rotated refresh token; userinfo with the new one.
    page.goto(f"{node_rp.url}/refresh")
    refreshed = json_of(page)
    assert refreshed.get("refreshed") is True, refreshed
    assert refreshed["access_token_changed"] and refreshed["refresh_token_rotated"]
    assert refreshed["userinfo"]["sub"] == person.sub

    # RP-Initiated Logout with id_token_hint: back at the RP with its state, no question asked.
    page.goto(f"{node_rp.url}/logout")
    expect(page).to_have_url(re.compile(rf"^{re.escape(node_rp.url)}/signed-out\?"))
    assert json_of(page) == {"signed_out": True, "state_matches": True}

    # The IdP session is over: the next sign-in asks for the password again.
    page.goto(f"{node_rp.url}/login")
    expect(page.get_by_label("Password")).to_be_visible()
