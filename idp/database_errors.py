"""Database errors as answers, never a 500: 503 "try again" while the database is
unreachable (a restart, a failover), 400 for a value the database refuses (PostgreSQL,
unlike SQLite, refuses NUL characters in text and values longer than their column).

Each answer matches its endpoint: a JSON error at the OAuth endpoints RPs call, a problem
document under the admin API, a page elsewhere. The pool pings connections before use
(idp.app), so idle ones a restart cut are replaced unseen; a request whose connection was
cut after its answer was made keeps that answer. Proven by
tests/security/test_faults_database.py and, for refused input, the property tests of
tests/security/test_fuzz_authorize.py on PostgreSQL.
"""

from __future__ import annotations

import json
import logging

from flask import Flask, render_template, request
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from werkzeug.wrappers import Response

from idp.admin.api.problems import ApiProblem, is_api_request, problem_response
from idp.db import db
from idp.errors import PageError

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5
JSON_ENDPOINTS = {"oidc.token", "oidc.userinfo", "oidc.revoke", "oidc.introspect",
                  "oidc.jwks", "oidc.discovery"}
UNAVAILABLE = "The service is briefly unavailable. Please try again in a moment."
REFUSED = "The request contains characters or values that are not allowed."


def init_app(app: Flask) -> None:
    """Register the handlers; call after `db.init_app` (its teardown must run after ours)."""
    app.register_error_handler(OperationalError, database_unavailable)
    app.register_error_handler(InterfaceError, database_unavailable)
    app.register_error_handler(DataError, value_refused)
    app.teardown_appcontext(end_session)


def answer(status: int, error: str, message: str, title: str,
           headers: dict[str, str] | None = None) -> Response:
    """The error in the shape the endpoint's callers read."""
    headers = {"Cache-Control": "no-store", **(headers or {})}
    if is_api_request():
        # The admin API answers input it cannot take with 422, as its validation does.
        response = problem_response(ApiProblem(422 if status == 400 else status, message))
        response.headers.update(headers)
        return response
    if request.endpoint in JSON_ENDPOINTS:
        body = {"error": error, "error_description": message}
        return Response(json.dumps(body), status, headers, mimetype="application/json")
    page = PageError(message, title=title)
    return Response(render_template("error.html", error=page), status, headers,
                    mimetype="text/html")


def database_unavailable(error: DBAPIError) -> Response:
    """The driver's connection errors (OperationalError and kin): 503, try again."""
    # The class only: a driver's message may carry a host or user name.
    log.warning("database unavailable (%s)", type(error.orig).__name__)
    _rollback()
    return answer(503, "temporarily_unavailable", UNAVAILABLE, "Please try again in a moment",
                  {"Retry-After": str(RETRY_AFTER_SECONDS)})


def value_refused(error: DataError) -> Response:
    """A value the database cannot take (too long, a NUL character): 400, not 500.

    A net under the checks of each form: they give the field's own message first.
    """
    log.warning("database refused a value (%s)", type(error.orig).__name__)
    _rollback()
    return answer(400, "invalid_request", REFUSED, "This request cannot be processed")


def end_session(_error: BaseException | None) -> None:
    """End the request's session, also when a restart cut its connection in the meantime.

    Otherwise the ROLLBACK of Flask-SQLAlchemy's own teardown fails after the answer was
    made, and the WSGI server sends its bare 500 instead of the answer.
    """
    try:
        db.session.remove()
    except SQLAlchemyError as exc:
        log.warning("database connection lost at the end of a request (%s)",
                    type(getattr(exc, "orig", exc)).__name__)
        db.session.registry.clear()  # the connection was invalidated; the session goes


def _rollback() -> None:
    try:
        db.session.rollback()
    except SQLAlchemyError:
        pass  # the connection is gone already; the pool replaces it
