"""Request ids and structured logs.

Each request gets an id: the proxy's `X-Request-ID` when it sent a sane one, else a new
random one. It is returned as `X-Request-ID` and carried by every log line written while
the request is handled, so one sign-in can be followed across lines (and across nodes,
when the proxy sets it).

`configure_logging(settings)` (called by wsgi.py, `idp serve` and `idp worker`, not by the
app factory, so the CLI's other commands stay quiet) writes one JSON object a line to
stderr: time, level, logger, message, request_id and the record's `extra` fields.

What is never logged: passwords, codes, tokens, secrets. Requests are logged by endpoint
name, not by path or query (paths of emailed links hold tokens; queries hold codes);
werkzeug's access log, which prints full URLs, and authlib's debug lines, which print token
responses, are kept quiet whatever the level.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

from flask import Flask, Response, g, has_request_context, request

from idp.config import Settings

log = logging.getLogger("idp.request")
REQUEST_ID_HEADER = "X-Request-ID"
# What a proxy may hand us: a UUID, a hex or base64url id. Anything else is replaced, so a
# client cannot write arbitrary text into every log line.
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")
# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


def init_app(app: Flask) -> None:
    """Give every request an id, return it, and log one line per request."""

    @app.before_request
    def assign_request_id() -> None:
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = offered if SANE_REQUEST_ID.match(offered) else secrets.token_hex(16)
        g.idp_log_started = time.perf_counter()

    @app.after_request
    def log_request(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
            if not log.isEnabledFor(logging.INFO):
                return response  # the line would be dropped: don't build it
            started = g.pop("idp_log_started", time.perf_counter())
            log.info("%s %s %s", request.method, request.endpoint or "unmatched",
                     response.status_code, extra={
                         "request_id": request_id,
                         "method": request.method,
                         "endpoint": request.endpoint or "unmatched",
                         "status": response.status_code,
                         "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                         "remote_addr": request.remote_addr,
                     })
        return response


def current_request_id() -> str | None:
    """The id of the request being handled, if any."""
    return g.get("request_id") if has_request_context() else None


class RequestIdFilter(logging.Filter):
    """Stamp each record with the current request's id (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """For reading in a terminal: time, level, logger, request id, message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is now (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def configure_logging(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Send every logger's records to stderr (or `stream`) in the configured format.

    Idempotent: a second call replaces the handler of the first.
    """
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "idp_handler", False):
            root.removeHandler(old)
    handler: logging.Handler = (_StderrHandler() if stream is None
                                else logging.StreamHandler(stream))
    handler.idp_handler = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if settings.server.log_format == "json"
                         else TextFormatter())
    root.addHandler(handler)
    level = logging.getLevelName(settings.server.log_level.upper())
    root.setLevel(level)
    # werkzeug's development-server access log prints full URLs (link tokens, codes);
    # alembic announces every migration context at INFO; authlib's debug lines print
    # whole token responses. None of them goes below these levels, even at DEBUG.
    logging.getLogger("werkzeug").setLevel(max(level, logging.WARNING))
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
    logging.getLogger("authlib").setLevel(max(level, logging.INFO))
    # Flask's own handler would print each app.logger line a second time, unformatted.
    from flask.logging import default_handler

    logging.getLogger("idp.app").removeHandler(default_handler)
    return handler
