"""Operations: health and readiness probes, Prometheus metrics, request ids, proxies."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete

from idp import create_app
from idp.db import db
from idp.models import SigningKey
from idp.notify.outbox import queue_email
from idp.security.encryption import generate_encryption_key
from tests.conftest import make_settings
from tests.driver import (
    exchange_code,
    open_login_page,
    refresh_tokens,
    sign_in,
    submit_form,
    with_totp,
)
from tests.factories import make_client, make_mfa_method, make_user


def metric(http, name: str, **labels: str) -> float:
    """The value of one sample of GET /metrics (0 when the series does not exist yet)."""
    text = http.get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


# -- probes -------------------------------------------------------------------------------------


def test_healthz_answers_without_touching_the_database(tmp_path):
    broken = create_app(make_settings(tmp_path, database={"url": "sqlite:////nonexistent/x.db"}))
    response = broken.test_client().get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_is_ready_with_a_database_and_signing_keys(http):
    response = http.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ready",
                             "checks": {"database": "ok", "signing_keys": "ok"}}


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path):
    broken = create_app(make_settings(tmp_path, database={"url": "sqlite:////nonexistent/x.db"}))
    with broken.app_context():
        response = broken.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["status"] == "not ready"
    assert response.json["checks"]["database"].startswith("unreachable")
    assert "nonexistent" not in response.get_data(as_text=True)  # no connection details


def test_readyz_is_503_without_signing_keys(app, http):
    db.session.execute(delete(SigningKey))
    db.session.commit()
    app.extensions["idp"].keys.invalidate()
    response = http.get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"] == {"database": "ok",
                                       "signing_keys": "missing (run `idp init`)"}


def test_readyz_is_503_when_the_encryption_keys_do_not_decrypt_the_signing_keys(app):
    other = create_app(make_settings(Path(app.instance_path),
                                     security={"encryption_keys": [generate_encryption_key()]}))
    with other.app_context():
        response = other.test_client().get("/readyz")
        db.session.remove()
        db.engine.dispose()
    assert response.status_code == 503
    assert response.json["checks"]["signing_keys"] == "unreadable (security.encryption_keys)"


# -- metrics ------------------------------------------------------------------------------------


def test_metrics_count_sign_ins_failures_mfa_and_tokens_by_grant(app, http):
    user, rp = make_user(), make_client()
    _, secret = make_mfa_method(user, "totp")
    before = {
        "sign_ins": metric(http, "idp_sign_ins_total"),
        "wrong": metric(http, "idp_sign_in_failures_total", reason="wrong_credentials"),
        "totp": metric(http, "idp_mfa_completions_total", method="totp"),
        "code": metric(http, "idp_tokens_issued_total", grant_type="authorization_code"),
        "refresh": metric(http, "idp_tokens_issued_total", grant_type="refresh_token"),
    }
    browser = app.test_client()
    login = open_login_page(browser, rp.client.client_id)
    submit_form(browser, login, email=user.email, password="not the password")
    result = sign_in(http, rp.client.client_id, user.email, scope="openid offline_access",
                     acr_values="urn:portal-idp:acr:mfa", mfa=with_totp(http, secret))
    tokens = exchange_code(http, result.code, rp.client.client_id, rp.client_secret).json
    assert refresh_tokens(http, tokens["refresh_token"], rp.client.client_id,
                          rp.client_secret).status_code == 200

    assert metric(http, "idp_sign_ins_total") == before["sign_ins"] + 1
    assert metric(http, "idp_sign_in_failures_total",
                  reason="wrong_credentials") == before["wrong"] + 1
    assert metric(http, "idp_mfa_completions_total", method="totp") == before["totp"] + 1
    assert metric(http, "idp_tokens_issued_total",
                  grant_type="authorization_code") == before["code"] + 1
    assert metric(http, "idp_tokens_issued_total",
                  grant_type="refresh_token") == before["refresh"] + 1


def test_metrics_show_the_outbox_depth_and_the_oldest_waiting_message(app, http, clock):
    for number in range(3):
        queue_email(f"p{number}@example.org", "reset_password", name="Pat", portal_name="MLS",
                    link="https://idp.example/r/x", lifetime="1 day")
    db.session.commit()
    clock.advance(90)
    assert metric(http, "idp_outbox_messages", status="queued") == 3
    assert metric(http, "idp_outbox_messages", status="sent") == 0
    assert 89 <= metric(http, "idp_outbox_oldest_due_seconds") <= 120


def test_metrics_time_requests_by_endpoint_never_by_path(http):
    before = metric(http, "idp_http_request_duration_seconds_count",
                    method="GET", endpoint="oidc.jwks")
    http.get("/jwks")
    after = metric(http, "idp_http_request_duration_seconds_count",
                   method="GET", endpoint="oidc.jwks")
    assert after == before + 1
    http.get("/password/a-link-token-that-must-not-be-a-label")
    text = http.get("/metrics").get_data(as_text=True)
    assert "a-link-token" not in text
    assert 'endpoint="account.set_password"' in text
    assert 'idp_http_requests_total{endpoint="oidc.jwks",method="GET",status="200"}' in text


# -- request ids and proxies -------------------------------------------------------------------


def test_every_response_has_a_request_id_that_a_proxy_may_set(http):
    made = http.get("/healthz").headers["X-Request-ID"]
    assert len(made) == 32 and made != http.get("/healthz").headers["X-Request-ID"]
    given = "3f1c9b0e-5d2a-4c7e-9a61-0b8f2e4d7c15"
    assert http.get("/healthz", headers={"X-Request-ID": given}).headers["X-Request-ID"] == given
    forged = 'abcdefgh" level="CRITICAL'  # text a client would like in every log line
    assert http.get("/healthz", headers={"X-Request-ID": forged}).headers["X-Request-ID"] != forged


def test_each_request_is_logged_once_with_its_id_endpoint_and_status(http, caplog):
    with caplog.at_level(logging.INFO, logger="idp.request"):
        response = http.get("/jwks", headers={"X-Request-ID": "request-id-0001"})
    [record] = [r for r in caplog.records if r.name == "idp.request"]
    assert record.request_id == "request-id-0001"
    assert (record.method, record.endpoint, record.status) == ("GET", "oidc.jwks", 200)
    assert response.headers["X-Request-ID"] == "request-id-0001"


@pytest.mark.parametrize(("hops", "seen"), [(0, "127.0.0.1"), (1, "203.0.113.9")])
def test_the_client_address_comes_from_trusted_proxies_only(app, caplog, hops, seen):
    proxied = create_app(make_settings(Path(app.instance_path),
                                       server={"trusted_proxy_hops": hops}))
    with proxied.app_context(), caplog.at_level(logging.INFO, logger="idp.request"):
        proxied.test_client().get("/healthz", headers={
            "X-Forwarded-For": "198.51.100.7, 203.0.113.9", "X-Forwarded-Proto": "https"})
        db.engine.dispose()
    [record] = [r for r in caplog.records if r.name == "idp.request"]
    assert record.remote_addr == seen


def test_readyz_is_503_when_the_throttle_redis_does_not_answer(app):
    other = create_app(make_settings(Path(app.instance_path),
                                     security={"throttle_redis_url": "redis://127.0.0.1:1/0"}))
    with other.app_context():
        response = other.test_client().get("/readyz")
        db.session.remove()
        db.engine.dispose()
    assert response.status_code == 503
    assert response.json["checks"]["throttle_redis"].startswith("unreachable")
