"""The application factory: it only wires settings, storage, blueprints and handlers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, render_template
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from idp import database_errors, ops
from idp.admin import api_error_response
from idp.config import Settings, load_settings
from idp.db import db
from idp.errors import PageError
from idp.oidc.keys import KeyStore
from idp.policy import KEEP_SIGNED_IN_LIMIT_DAYS
from idp.secrets_store import resolve_secrets
from idp.security.csrf import csrf_token
from idp.security.encryption import Encryptor
from idp.security.passwords import PasswordHashing

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class IdpRuntime:
    """Per-app services, reached as `current_app.extensions["idp"]`."""

    settings: Settings
    passwords: PasswordHashing
    encryptor: Encryptor
    keys: KeyStore
    metadata: dict[str, Any] = field(default_factory=dict)
    metadata_json: bytes = b""  # the discovery document as served, rendered once


def create_app(settings: Settings | None = None) -> Flask:
    """Build the IdP from `settings` (default: IDP_CONFIG and the environment)."""
    settings = settings or load_settings()
    secret_key, encryption_keys = resolve_secrets(settings)
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(settings.instance_dir),
    )
    cookie_name = "__Host-idp" if settings.uses_https else "idp_session"
    app.config.update(
        SECRET_KEY=secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ECHO=settings.database.echo,
        # Connections a database restart cut are replaced at checkout, not failed on use.
        # (Not SQLite: a file has no server to restart, and a ping costs a query a request.)
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": not settings.database_url.startswith(
            "sqlite")},
        SESSION_COOKIE_NAME=cookie_name,
        SESSION_COOKIE_SECURE=settings.uses_https,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # The cookie of "Keep me signed in"; the server enforces each portal's shorter limit.
        PERMANENT_SESSION_LIFETIME=timedelta(days=KEEP_SIGNED_IN_LIMIT_DAYS),
        MAX_CONTENT_LENGTH=1024 * 1024,
        IDP_DEVELOPMENT=settings.is_development,
    )
    encryptor = Encryptor(encryption_keys)
    publish_window = timedelta(seconds=settings.tokens.id_token_lifetime)
    app.extensions["idp"] = IdpRuntime(
        settings=settings,
        passwords=PasswordHashing(settings.security),
        encryptor=encryptor,
        keys=KeyStore(encryptor, publish_window),
    )
    db.init_app(app)
    ops.init_app(app)  # first: the request id exists before any other hook logs
    _register_blueprints(app)
    _register_handlers(app)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.session_interface = SessionCookies()
    hops = settings.server.trusted_proxy_hops
    if hops:
        # Behind a TLS-terminating proxy: the client's address (rate limits, logs) and the
        # https scheme come from X-Forwarded-For/-Proto, trusted for exactly `hops` proxies.
        # The host is not taken from headers: URLs are built from the configured issuer.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    return app


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed session cookie, with its signer made once instead of every request."""

    def __init__(self) -> None:
        self._signer: tuple[tuple[Any, ...], URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        key = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        if self._signer is None or self._signer[0] != key:
            self._signer = (key, super().get_signing_serializer(app))
        return self._signer[1]


def _register_blueprints(app: Flask) -> None:
    from idp import admin, invitations, legacy
    from idp.account import bp as account_bp
    from idp.login.views import bp as login_bp
    from idp.oidc.discovery import build_metadata
    from idp.oidc.server import init_oidc
    from idp.oidc.views import bp as oidc_bp

    init_oidc(app)
    app.register_blueprint(oidc_bp)
    app.register_blueprint(login_bp)
    app.register_blueprint(account_bp)
    invitations.init_app(app)  # its follow-ups on the set-password page
    legacy.init_app(app)  # after invitations: chains onto their follow-up
    admin.init_app(app)
    runtime = app.extensions["idp"]
    if runtime.settings.is_development:
        from idp.notify.views import bp as dev_bp

        app.register_blueprint(dev_bp)
    runtime.metadata = build_metadata(app, runtime.settings.server.issuer)


def _register_handlers(app: Flask) -> None:
    database_errors.init_app(app)  # a restarting database: 503; refused input: 400
    settings: Settings = app.extensions["idp"].settings

    @app.errorhandler(PageError)
    def page_error(error: PageError) -> tuple[str, int, dict[str, str]]:
        headers = {}
        if getattr(error, "retry_after", 0):
            headers["Retry-After"] = str(error.retry_after)  # type: ignore[attr-defined]
        return render_template("error.html", error=error), error.status_code, headers

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response | tuple[str, int]:
        if (api_response := api_error_response(error)) is not None:
            return api_response
        page = PageError(error.description or "", title=error.name)
        return render_template("error.html", error=page), error.code or 500

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> Response | tuple[str, int]:
        app.logger.exception("unhandled error")
        db.session.rollback()
        if (api_response := api_error_response(error)) is not None:
            return api_response
        page = PageError("Please try again in a moment.", title="Something went wrong on our side")
        return render_template("error.html", error=page), 500

    always = [
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
        ("Content-Security-Policy",
         "default-src 'self'; img-src 'self' https: data:; frame-ancestors 'none'; "
         "form-action *; base-uri 'none'; object-src 'none'"),
    ]
    if settings.uses_https:
        # Browsers keep to https for two years (they ignore it on plain-HTTP answers).
        always.append(("Strict-Transport-Security", "max-age=63072000"))

    @app.after_request
    def security_headers(response: Response) -> Response:
        # A view's own value wins. One pass over the headers (this runs on every answer).
        headers = response.headers
        present = {key.lower() for key in headers.keys()}
        for key, value in always:
            if key.lower() not in present:
                headers.add(key, value)
        if response.mimetype == "text/html" and "cache-control" not in present:
            headers.add("Cache-Control", "no-store")
        return response


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """SQLite: enforce foreign keys, WAL for concurrent readers, NORMAL sync under WAL."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()
