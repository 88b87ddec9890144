"""Liveness (`/healthz`) and readiness (`/readyz`) probes."""

from __future__ import annotations

import logging

from flask import current_app, jsonify
from joserfc.errors import MissingKeyError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from idp.config import ConfigError
from idp.db import db
from idp.ops import bp

log = logging.getLogger(__name__)
NO_STORE = {"Cache-Control": "no-store"}


@bp.get("/healthz")
def healthz() -> tuple[Response, int, dict[str, str]]:
    """The process is up and serving; touches nothing else (a liveness probe)."""
    return jsonify(status="ok"), 200, NO_STORE


@bp.get("/readyz")
def readyz() -> tuple[Response, int, dict[str, str]]:
    """Ready for traffic: the database answers, the signing keys load and decrypt, and
    the throttle's Redis answers when one is configured."""
    checks = {"database": check_database(), "signing_keys": "not checked"}
    if checks["database"] == "ok":
        checks["signing_keys"] = check_signing_keys()
    if current_app.extensions["idp"].settings.security.throttle_redis_url:
        checks["throttle_redis"] = check_throttle_redis()
    db.session.rollback()  # nothing to keep: give the connection back now
    ready = all(value == "ok" for value in checks.values())
    if not ready:
        log.warning("not ready", extra={"checks": checks})
    body = jsonify(status="ready" if ready else "not ready", checks=checks)
    return body, 200 if ready else 503, NO_STORE


def check_database() -> str:
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()  # end the transaction: the pool gets the connection back clean
    except SQLAlchemyError as exc:
        db.session.rollback()
        # The class only: a driver's message may carry a host name or a user name.
        return f"unreachable ({type(exc).__name__})"
    return "ok"


def check_throttle_redis() -> str:
    """security.throttle_redis_url answers (every credential check needs it)."""
    import redis

    from idp.security.throttle_redis import counters_for

    try:
        counters_for(current_app.extensions["idp"].settings.security.throttle_redis_url).ping()
    except redis.RedisError as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ok"


def check_signing_keys() -> str:
    runtime = current_app.extensions["idp"]
    try:
        runtime.keys.signing_key(runtime.settings.tokens.signing_alg)
    except (LookupError, MissingKeyError):  # none active / none at all
        return "missing (run `idp init`)"
    except ConfigError:
        return "unreadable (security.encryption_keys)"
    except SQLAlchemyError as exc:
        db.session.rollback()
        return f"unreachable ({type(exc).__name__})"
    return "ok"
