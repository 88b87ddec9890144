"""A real relying party signs a person in over real HTTP, then refreshes, revokes, logs out."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from idp import create_app
from idp.db import db
from tests.conftest import make_settings
from tests.databases import TemplateDatabase
from tests.factories import PASSWORD, make_client, make_user
from tests.html_forms import parse_forms
from tests.live import serve
from tests.relying_party import create_relying_party


@pytest.fixture
def live(tmp_path: Path, template_database: TemplateDatabase):
    """An IdP and an RP, each a live server on 127.0.0.1, and a registered client."""
    instance = tmp_path / "instance"
    template_database.copy_to(instance)
    built = {}

    def build_idp(url: str):
        built["idp"] = create_app(make_settings(instance, server={"issuer": url}))
        return built["idp"]

    with serve(build_idp) as idp_url:
        rp_ports = {}

        def build_rp(url: str):
            with built["idp"].app_context():
                user = make_user()
                client = make_client(
                    redirect_uris=[f"{url}/callback"],
                    post_logout_redirect_uris=[f"{url}/signed-out"],
                    backchannel_logout_uri=f"{url}/backchannel-logout",
                )
                rp_ports.update(email=user.email, sub=user.sub)
                client_id, client_secret = client.client.client_id, client.client_secret
            app, record = create_relying_party(url, idp_url, client_id, client_secret)
            rp_ports["record"] = record
            return app

        with serve(build_rp) as rp_url:
            yield {"idp": idp_url, "rp": rp_url, **rp_ports, "app": built["idp"]}
        with built["idp"].app_context():
            db.engine.dispose()


def sign_in_at_rp(browser: requests.Session, rp_url: str, email: str) -> requests.Response:
    page = browser.get(f"{rp_url}/login", timeout=10)
    assert page.status_code == 200 and "Sign in" in page.text
    form = parse_forms(page.text)[0]
    action = requests.compat.urljoin(page.url, form.action)
    return browser.post(
        action, data={**form.fields, "email": email, "password": PASSWORD}, timeout=10
    )


def test_relying_party_signs_in_refreshes_revokes_and_logs_out(live):
    with requests.Session() as browser:
        check_full_journey(browser, live)


def check_full_journey(browser: requests.Session, live: dict) -> None:
    record = live["record"]

    signed_in = sign_in_at_rp(browser, live["rp"], live["email"])
    assert signed_in.status_code == 200, signed_in.text
    claims = signed_in.json()
    assert claims["sub"] == live["sub"] and claims["email"] == live["email"]
    assert claims["iss"] == live["idp"] and claims["amr"] == ["pwd"]
    assert record["token"]["refresh_token"]

    me = browser.get(f"{live['rp']}/me", timeout=10).json()
    assert me["sub"] == live["sub"] and me["email_verified"] is True

    # Refresh rotates: the old refresh token is refused afterwards.
    assert browser.get(f"{live['rp']}/refresh", timeout=10).json() == {"refreshed": True}
    old, new = record["previous_token"], record["token"]
    assert new["refresh_token"] != old["refresh_token"]
    assert browser.get(f"{live['rp']}/me", timeout=10).json()["sub"] == live["sub"]

    # Revocation: the access token stops working at userinfo.
    assert browser.get(f"{live['rp']}/revoke", timeout=10).json() == {"status": 200}
    userinfo = requests.get(
        f"{live['idp']}/userinfo",
        headers={"Authorization": f"Bearer {new['access_token']}"},
        timeout=10,
    )
    assert userinfo.status_code == 401

    # Single sign-on: a second visit needs no password while the IdP session lives.
    again = browser.get(f"{live['rp']}/login", timeout=10)
    assert again.status_code == 200 and again.json()["sub"] == live["sub"]

    # RP-initiated logout: back to the registered URI with state, back-channel token sent.
    out = browser.get(f"{live['rp']}/logout", timeout=10)
    assert out.status_code == 200 and out.url.startswith(f"{live['rp']}/signed-out")
    assert record["post_logout"][-1]["state"] == "bye-123"
    assert len(record["logout_tokens"]) == 1
    logout = record["logout_tokens"][0]
    assert logout["sub"] == live["sub"] and logout["sid"] == record["claims"]["sid"]

    # The IdP session is gone: the next sign-in asks for the password again.
    page = browser.get(f"{live['rp']}/login", timeout=10)
    assert 'name="password"' in page.text
