"""Prometheus metrics: what a person or an operator would ask "is it working?" about.

- `idp_sign_ins_total`: passwords accepted at the sign-in step.
- `idp_sign_in_failures_total{reason}`: refused passwords; `wrong_credentials`,
  `throttled` (waiting after failures), `locked` (100 consecutive failures).
- `idp_mfa_completions_total{method}`: second factors passed (`totp`, `email`, `sms`,
  `webauthn`, `recovery`, ...: the kind recorded on the sign-in).
- `idp_tokens_issued_total{grant_type}`: token responses (`authorization_code`,
  `refresh_token`, `client_credentials`).
- `idp_outbox_deliveries_total{channel, result}`: sends tried by the worker; `sent`,
  `retry` (failed, tried again later), `failed` (gave up).
- `idp_outbox_messages{status}`: messages in the outbox now (queued + sending: the depth).
- `idp_outbox_oldest_due_seconds`: how long the oldest due message has waited (0: none).
- `idp_http_requests_total{method, endpoint, status}`: requests answered.
- `idp_http_request_duration_seconds{method, endpoint}`: latency histogram.

`endpoint` is the Flask endpoint name (`login.interaction`, `oidc.token`), never the path,
which may hold a token. Counters are per process; under gunicorn set
PROMETHEUS_MULTIPROC_DIR (idp/ops/gunicorn_conf.py does) and every worker's counts are
added up at each scrape, whichever worker answers it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from idp.clock import utcnow
from idp.db import db
from idp.ops import bp

SIGN_INS = Counter("idp_sign_ins", "Passwords accepted at the sign-in step")
SIGN_IN_FAILURES = Counter(
    "idp_sign_in_failures", "Refused sign-in attempts at the password step", ["reason"]
)
MFA_COMPLETIONS = Counter("idp_mfa_completions", "Second factors passed", ["method"])
TOKENS_ISSUED = Counter("idp_tokens_issued", "Tokens issued at the token endpoint",
                        ["grant_type"])
OUTBOX_DELIVERIES = Counter("idp_outbox_deliveries", "Email and text message sends tried",
                            ["channel", "result"])
HTTP_REQUESTS = Counter("idp_http_requests", "HTTP requests answered",
                        ["method", "endpoint", "status"])
HTTP_LATENCY = Histogram(
    "idp_http_request_duration_seconds", "Time to answer an HTTP request",
    ["method", "endpoint"],
    # Argon2 makes a password check ~20-50 ms; a slow one under load runs to seconds.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def init_app(app: Flask) -> None:
    """Time every request and count it by endpoint and status."""

    @app.before_request
    def start_timer() -> None:
        g.idp_started = time.perf_counter()

    @app.after_request
    def observe_request(response: Response) -> Response:
        started = g.pop("idp_started", None)
        if started is not None:
            endpoint = request.endpoint or "unmatched"
            HTTP_LATENCY.labels(request.method, endpoint).observe(time.perf_counter() - started)
            HTTP_REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
        return response


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text exposition: this process's (or all workers') series, outbox state."""
    registry: Any = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    live = CollectorRegistry(auto_describe=False)
    live.register(OutboxCollector(outbox_state()))
    body = generate_latest(registry) + generate_latest(live)
    return Response(body, mimetype=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


def outbox_state() -> tuple[dict[str, int], float]:
    """({status: count}, seconds the oldest due message has waited), read now."""
    from idp.models.outbox import QUEUED, OutboxMessage

    counts: dict[str, int] = {
        status: count for status, count in db.session.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))
    }
    now = utcnow()
    oldest = db.session.scalar(
        select(func.min(OutboxMessage.next_attempt_at))
        .where(OutboxMessage.status == QUEUED, OutboxMessage.next_attempt_at <= now)
    )
    db.session.rollback()
    return counts, max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0


class OutboxCollector(Collector):
    """The outbox as gauges, from one reading of the database (shared by all nodes)."""

    def __init__(self, state: tuple[dict[str, int], float]) -> None:
        self.counts, self.oldest = state

    def collect(self) -> Iterator[Metric]:
        from idp.models.outbox import FAILED, QUEUED, SENDING, SENT

        messages = GaugeMetricFamily("idp_outbox_messages",
                                     "Outbox messages by status (queued + sending: the depth)",
                                     labels=["status"])
        for status in (QUEUED, SENDING, SENT, FAILED):
            messages.add_metric([status], self.counts.get(status, 0))
        yield messages
        yield GaugeMetricFamily("idp_outbox_oldest_due_seconds",
                                "Seconds the oldest due message has waited to be sent",
                                value=self.oldest)
