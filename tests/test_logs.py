"""Structured logs: one JSON object a line, each request's lines sharing its request id, and
never a password, code, token or secret in any of them, over a whole sign-in with MFA."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta

import pytest
from flask import Flask

from idp.db import db
from idp.models.outbox import OutboxMessage
from idp.notify.worker import deliver_due
from idp.ops.logs import configure_logging
from idp.portals import create_portal, update_portal
from tests.driver import (
    answer_mfa,
    bearer,
    endpoint_request,
    exchange_code,
    open_login_page,
    refresh_tokens,
    sign_in,
    submit_form,
    totp_code,
)
from tests.factories import PASSWORD, make_client, make_mfa_method, make_user

POST_LOGOUT = "https://rp.example.org/signed-out"
WRONG_PASSWORD = "a wrong guess at the password"


@pytest.fixture
def log_output(app: Flask) -> Iterator[io.StringIO]:
    """What production writes to stderr, at DEBUG, so that every library's lines count too."""
    root = logging.getLogger()
    names = ("werkzeug", "alembic", "authlib")
    saved = root.level, list(root.handlers), {n: logging.getLogger(n).level for n in names}
    settings = app.extensions["idp"].settings
    debug = replace(settings, server=replace(settings.server, log_level="DEBUG"))
    buffer = io.StringIO()
    configure_logging(debug, stream=buffer)
    try:
        yield buffer
    finally:
        level, handlers, levels = saved
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
        for name, value in levels.items():
            logging.getLogger(name).setLevel(value)


@pytest.fixture
def rp(app):
    portal = create_portal("mls", "Lakeside MLS")
    update_portal(portal.slug, {"mfa_required_from": str(date.today() - timedelta(days=1))})
    return make_client(portal_slug=portal.slug, post_logout_redirect_uris=[POST_LOGOUT])


def newest_emailed_code(to: str) -> str:
    message = db.session.execute(
        db.select(OutboxMessage).filter_by(recipient=to).order_by(OutboxMessage.id.desc())
    ).scalars().first()
    assert message is not None
    found = re.search(r"\b(\d{6})\b", message.body_text)
    assert found, message.body_text
    return found.group(1)


@pytest.mark.parametrize("method", ["totp", "email"])
def test_a_full_sign_in_with_mfa_logs_no_password_code_token_or_secret(
    app, http, rp, log_output, method
):
    user = make_user()
    secrets_seen: dict[str, str] = {"password": PASSWORD, "wrong password": WRONG_PASSWORD,
                                    "client secret": rp.client_secret}
    if method == "totp":
        _, seed = make_mfa_method(user, "totp")
        secrets_seen["totp seed"] = seed

        def answer(page):
            secrets_seen["totp code"] = code = totp_code(seed)
            return answer_mfa(http, page, code)
    else:
        make_mfa_method(user, "email")

        def answer(page):
            secrets_seen["emailed code"] = code = newest_emailed_code(user.email)
            return answer_mfa(http, page, code)

    # A wrong password first (failures are logged, what was typed is not), then the sign-in.
    browser = app.test_client()
    page = open_login_page(browser, rp.client.client_id)
    refused = submit_form(browser, page, email=user.email, password=WRONG_PASSWORD)
    assert "match an account" in refused.get_data(as_text=True)
    result = sign_in(http, rp.client.client_id, user.email, scope="openid email offline_access",
                     mfa=answer, nonce="nonce-value")
    secrets_seen["authorization code"] = result.code
    tokens = exchange_code(http, result.code, rp.client.client_id, rp.client_secret).json
    assert "id_token" in tokens, tokens
    assert http.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 200
    refreshed = refresh_tokens(http, tokens["refresh_token"], rp.client.client_id,
                               rp.client_secret).json
    endpoint_request(http, "/introspect", {"token": refreshed["access_token"]},
                     rp.client.client_id, rp.client_secret)
    endpoint_request(http, "/revoke", {"token": refreshed["refresh_token"]},
                     rp.client.client_id, rp.client_secret)
    # The replayed code and refresh token are refused, and that is logged without them.
    exchange_code(http, result.code, rp.client.client_id, rp.client_secret)
    refresh_tokens(http, tokens["refresh_token"], rp.client.client_id, rp.client_secret)
    out = http.get("/logout", query_string={"id_token_hint": refreshed.get("id_token")
                                            or tokens["id_token"],
                                            "post_logout_redirect_uri": POST_LOGOUT})
    assert out.status_code in (200, 302, 303)
    deliver_due()
    for name in ("access_token", "refresh_token", "id_token"):
        secrets_seen[name] = tokens[name]
        if name in refreshed:
            secrets_seen[f"refreshed {name}"] = refreshed[name]
    cookie = http.get_cookie("idp_session")
    if cookie is not None:
        secrets_seen["session cookie"] = cookie.value

    lines = log_output.getvalue().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    requests = [e for e in entries if e["logger"] == "idp.request"]
    assert len(requests) >= 10 and all(e["request_id"] for e in requests)
    assert any(e["message"].startswith("audit signin.failure") for e in entries)
    assert {"oidc.token", "oidc.userinfo", "login.interaction"} <= {e["endpoint"]
                                                                     for e in requests}
    for line in lines:
        for what, value in secrets_seen.items():
            assert value not in line, f"the {what} is in a log line: {line}"
        # no query string or link path either: they carry codes and tokens
        assert "code=" not in line and "/password/" not in line, line
