"""Running the IdP in production: health probes, Prometheus metrics, request ids and logs.

- `GET /healthz`: the process answers (no database), for liveness probes.
- `GET /readyz`: the database answers and the signing keys load; 503 otherwise, so a load
  balancer stops sending sign-ins to a node that cannot complete them.
- `GET /metrics`: Prometheus text format (`idp.ops.metrics` lists the series). Under
  gunicorn the workers share their counters through PROMETHEUS_MULTIPROC_DIR.
- Every request gets an id (`X-Request-ID`, taken from a proxy or made here) that every log
  line of the request carries; `idp.ops.logs` writes one JSON object a line.
"""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("ops", __name__)


def init_app(app: Flask) -> None:
    """Register the probes and metrics endpoints, request ids and request metrics."""
    from idp.ops import health, logs, metrics  # noqa: F401  (the views register on `bp`)

    logs.init_app(app)
    metrics.init_app(app)
    app.register_blueprint(bp)
