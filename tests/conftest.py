"""Fixtures: an app on a migrated database copy, the `http` test client, a movable clock.

The database is SQLite unless IDP_TEST_DATABASE_URL names a PostgreSQL server
(tests/databases.py explains how each test gets a clean database quickly).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp import create_app
from idp.clock import clock as idp_clock
from idp.config import Settings, load_settings
from idp.security.encryption import generate_encryption_key
from idp.storage import initialise
from tests.databases import TemplateDatabase, registry
from tests.factories import make_client, make_user  # noqa: F401  (re-exported for tests)

ENCRYPTION_KEY = generate_encryption_key()
ISSUER = "http://127.0.0.1:5000"


def make_settings(instance: Path, **sections: dict[str, Any]) -> Settings:
    """Test settings: a private instance folder, cheap argon2, fixed secrets."""
    overrides: dict[str, dict[str, Any]] = {
        "server": {"instance_path": str(instance), "secret_key": "test-secret", "issuer": ISSUER},
        "security": {
            "encryption_keys": [ENCRYPTION_KEY],
            "argon2_time_cost": 1,
            "argon2_memory_kib": 1024,
        },
    }
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    if "url" not in overrides.get("database", {}):
        url = registry.url_for(instance)  # PostgreSQL: the instance's own database
        if url is not None:
            overrides.setdefault("database", {})["url"] = url
    return load_settings(path="", environ={}, overrides=overrides)


@pytest.fixture(scope="session", autouse=True)
def _test_databases() -> Iterator[None]:
    """Drop the session's PostgreSQL databases at the end."""
    yield
    registry.close()


@pytest.fixture(autouse=True)
def _databases_of_the_test() -> Iterator[None]:
    """Forget the test's instance databases when it ends (PostgreSQL: drop the extra ones)."""
    yield
    registry.end_test()


@pytest.fixture(scope="session")
def template_database(tmp_path_factory: pytest.TempPathFactory) -> TemplateDatabase:
    """Migrate once to head (with signing keys); each test gets a copy (`copy_to`)."""
    instance = tmp_path_factory.mktemp("template")
    registry.start_template(instance)
    application = create_app(make_settings(instance))
    initialise(application)
    with application.app_context():
        from idp.db import db

        db.engine.dispose()  # closing the last connection checkpoints the WAL into the file
    registry.finish_template(instance)
    return TemplateDatabase(instance / "idp.sqlite3", registry)


@pytest.fixture
def settings_overrides() -> dict[str, dict[str, Any]]:
    """Override in a test module to change settings: {"tokens": {"code_lifetime": 5}}."""
    return {}


@pytest.fixture
def app(
    tmp_path: Path,
    template_database: TemplateDatabase,
    settings_overrides: dict[str, dict[str, Any]],
) -> Iterator[Flask]:
    instance = tmp_path / "instance"
    template_database.copy_to(instance)
    application = create_app(make_settings(instance, **settings_overrides))
    application.config["TESTING"] = True
    with application.app_context():
        yield application
        from idp.db import db

        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def http(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    """A live SMTP server on 127.0.0.1; pair with `mail_settings` to send through it."""
    from tests.smtp_server import SmtpServer

    server = SmtpServer().start()
    yield server
    server.stop()


class MovableClock:
    """Moves the IdP's notion of now; time only goes where a test sends it."""

    def advance(self, seconds: float) -> None:
        idp_clock.offset += seconds


@pytest.fixture
def clock() -> Iterator[MovableClock]:
    yield MovableClock()
    idp_clock.offset = 0.0
