"""gunicorn settings for production: `gunicorn -c python:idp.ops.gunicorn_conf 'wsgi:app'`.

Environment (all optional):
- `IDP_BIND`: where to listen (default 127.0.0.1:8000; a proxy terminates TLS in front).
- `WEB_CONCURRENCY`: worker processes (default: 2 per CPU core). Sign-ins are CPU-bound
  (argon2 hashing), so more workers than cores only helps while others wait on the
  database; see docs/operations.md for sizing.
- `IDP_TIMEOUT`: seconds before a stuck worker is restarted (default 30).
- `PROMETHEUS_MULTIPROC_DIR`: where workers share their metrics. Set here to a fresh
  private folder when unset, so `/metrics` adds up every worker whichever one answers.

Every node of a cluster runs this with the same configuration and database; `idp init`
runs once per deployment (a release step), not on every node.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

bind = os.environ.get("IDP_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1)))
worker_class = "sync"
timeout = int(os.environ.get("IDP_TIMEOUT", "30"))
graceful_timeout = 30
# Restart workers now and then, so a slow leak cannot grow without bound.
max_requests = 5000
max_requests_jitter = 500
# The app logs each request as JSON (idp.ops.logs) without paths or queries, which may
# hold tokens; gunicorn's access log would print them, so it stays off.
accesslog = None
errorlog = "-"

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Before any worker imports prometheus_client: the mode is chosen at import time.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="idp-metrics-")


def on_starting(server: Any) -> None:
    """Start from empty counters: files of an earlier run would be added in."""
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    for kind in ("counter", "gauge", "histogram", "summary"):
        for stale in folder.glob(f"{kind}_*.db"):
            stale.unlink()
    folder.mkdir(parents=True, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    """A worker's live gauges go with it (its counters stay counted)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if os.environ["PROMETHEUS_MULTIPROC_DIR"].startswith(tempfile.gettempdir() + "/idp-metrics-"):
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
