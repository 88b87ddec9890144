"""Codes by text message: the development sender (kept, shown on the dev mailbox page), the
HTTP gateway sender, masked numbers, and the [sms] settings."""

from __future__ import annotations

import html
import json
import re
import threading
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from idp.config import ConfigError, load_settings
from idp.db import db
from idp.mfa import codes
from idp.models import MfaMethod, OutboxMessage
from idp.models.outbox import QUEUED, SENT
from idp.notify.worker import deliver_due
from idp.portals import create_portal, update_portal
from tests.driver import (
    answer_mfa,
    answered_with_code,
    follow_to_client,
    open_login_page,
    shows_step,
)
from tests.driver import submit_form as submit
from tests.factories import PASSWORD, make_client, make_mfa_method, make_user

PHONE = "+12035550163"


@pytest.fixture
def portal(app):
    portal = create_portal("mls", "Lakeside MLS")
    update_portal(portal.slug, {"mfa_required_from": str(date.today() - timedelta(days=1))})
    return portal


@pytest.fixture
def rp(portal):
    return make_client(portal_slug=portal.slug)


@pytest.fixture
def user(app):
    return make_user()


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def texted_codes(to: str = PHONE) -> list[str]:
    """Codes in the text messages kept by the development sender, oldest first."""
    deliver_due()
    messages = db.session.scalars(
        db.select(OutboxMessage).filter_by(channel="sms", recipient=to).order_by(OutboxMessage.id)
    ).all()
    assert all(m.status == SENT for m in messages)
    return [re.match(r"(\d{6}) ", m.body_text).group(1) for m in messages]  # type: ignore[union-attr]


def after_password(http, client_id: str, email: str):
    page = open_login_page(http, client_id)
    return follow_to_client(http, submit(http, page, email=email, password=PASSWORD))


def test_a_text_message_code_signs_in_and_the_number_is_masked(http, rp, user):
    make_mfa_method(user, "sms", PHONE)
    page = after_password(http, rp.client.client_id, user.email)
    assert shows_step(page, "mfa_challenge")
    assert PHONE not in text(page) and "+•••••••••63" in text(page)
    [code] = texted_codes()
    done = follow_to_client(http, answer_mfa(http, page, code))
    assert answered_with_code(done)


def test_the_dev_mailbox_page_shows_the_text_message(http, rp, user):
    make_mfa_method(user, "sms", PHONE)
    after_password(http, rp.client.client_id, user.email)
    [code] = texted_codes()
    mailbox = text(http.get("/dev/mailbox"))
    assert f"Text message to {PHONE}" in mailbox and code in mailbox
    assert "Lakeside MLS verification code" in mailbox


def test_sms_enrolment_takes_a_number_with_its_country_code_and_verifies_it(http, portal, rp,
                                                                            user):
    page = after_password(http, rp.client.client_id, user.email)
    page = submit(http, page, kind="sms", action="choose")
    assert "Mobile phone number" in text(page) and "SIM card" in text(page)
    refused = submit(http, page, address="203 555 0163")
    assert "country code" in text(refused)
    page = submit(http, refused, address="+1 (203) 555-0163")
    assert shows_step(page, "mfa_enroll") and "+•••••••••63" in text(page)
    [code] = texted_codes()
    done = answer_mfa(http, page, code)
    assert "Two-step verification is on" in text(done)
    method = db.session.scalars(db.select(MfaMethod)).one()
    assert method.kind == "sms" and method.destination == PHONE
    db.session.refresh(user)
    assert user.phone == PHONE and user.phone_verified


@pytest.mark.parametrize("typed, stored", [
    ("+1 203 555 0163", "+12035550163"),
    ("0044 20 7946 0958", "+442079460958"),
    ("+33.1.23.45.67.89", "+33123456789"),
])
def test_phone_numbers_are_normalised_to_e164(typed, stored):
    assert codes.normalise_phone(typed) == stored


@pytest.mark.parametrize("typed", ["2035550163", "+1 203", "+0 123 456 789", "+1 203 555 O163"])
def test_numbers_without_country_code_or_with_letters_are_refused(typed):
    with pytest.raises(codes.MfaError):
        codes.normalise_phone(typed)


# -- the HTTP gateway -------------------------------------------------------------------------


class Gateway:
    """A stand-in SMS gateway on 127.0.0.1 that records what it is sent."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 202
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                gateway.requests.append({"path": self.path, "headers": dict(self.headers),
                                         "json": json.loads(body)})
                self.send_response(gateway.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


_gateway: Gateway | None = None


@pytest.fixture
def gateway():
    global _gateway
    _gateway = Gateway()
    yield _gateway
    _gateway.stop()
    _gateway = None


@pytest.fixture
def settings_overrides(request):
    if "gateway" not in request.fixturenames:
        return {}
    gateway = request.getfixturevalue("gateway")
    return {"sms": {"backend": "http", "http_url": f"http://127.0.0.1:{gateway.port}/messages",
                    "http_token": "gateway-token", "http_sender": "+18336972963"}}


def test_the_http_sender_posts_json_with_the_token(app, gateway, user):
    method = make_mfa_method(user, "sms", PHONE)
    codes.send_code(method, "Lakeside MLS")
    assert deliver_due() == 1
    [sent] = gateway.requests
    assert sent["path"] == "/messages"
    assert sent["headers"]["Authorization"] == "Bearer gateway-token"
    assert sent["headers"]["Content-Type"] == "application/json"
    assert sent["json"]["to"] == PHONE and sent["json"]["from"] == "+18336972963"
    assert re.match(r"\d{6} is your Lakeside MLS verification code", sent["json"]["text"])


def test_a_gateway_error_keeps_the_message_for_a_retry(app, gateway, user):
    gateway.status = 500
    method = make_mfa_method(user, "sms", PHONE)
    codes.send_code(method, "Lakeside MLS")
    assert deliver_due() == 0
    message = db.session.scalars(db.select(OutboxMessage)).one()
    assert message.status == QUEUED and "500" in (message.last_error or "")


@pytest.mark.parametrize("sms, key", [
    ({"backend": "carrier-pigeon"}, "sms.backend"),
    ({"backend": "http"}, "sms.http_url"),
    ({"backend": "http", "http_url": "http://sms.example.com/send"}, "sms.http_url"),
    ({"http_timeout": 0}, "sms.http_timeout"),
])
def test_invalid_sms_settings_name_the_key(sms, key):
    with pytest.raises(ConfigError) as error:
        load_settings(path="", environ={}, overrides={"sms": sms})
    assert str(error.value).startswith(f"{key}:")


def test_sms_settings_come_from_the_environment():
    settings = load_settings(path="", environ={
        "IDP_SMS__BACKEND": "http", "IDP_SMS__HTTP_URL": "https://sms.example.com/send",
        "IDP_SMS__HTTP_TIMEOUT": "2.5"})
    assert settings.sms.backend == "http" and settings.sms.http_timeout == 2.5


def test_a_number_on_file_is_never_shown_in_full(http, portal, rp, user):
    user.phone = PHONE
    db.session.commit()
    page = after_password(http, rp.client.client_id, user.email)
    page = submit(http, page, kind="sms", action="choose")
    assert PHONE not in text(page) and "ends in 63" in text(page)
