"""Alembic migrations: head matches the models, and `idp init` on a live database is a no-op."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask

from idp import create_app
from idp.db import db
from idp.storage import alembic_config, initialise, upgrade_database
from tests.conftest import ENCRYPTION_KEY, make_settings
from tests.factories import make_client, make_user

CONSOLE_SCRIPT = Path(sys.executable).with_name("idp")


@contextmanager
def app_on(instance: Path) -> Iterator[Flask]:
    application = create_app(make_settings(instance))
    with application.app_context():
        try:
            yield application
        finally:
            db.session.remove()
            db.engine.dispose()


def schema_of(database: Path) -> list[tuple[Any, ...]]:
    """Every table and index definition SQLite holds, in a stable order."""
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return connection.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()


def rows_of(database: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return connection.execute(sql).fetchall()


def test_migrations_have_a_single_head():
    assert len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1


def test_upgrading_an_empty_database_gives_exactly_the_models_schema(tmp_path):
    with app_on(tmp_path / "instance") as app:
        upgrade_database(app)
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, db.metadata)
            assert context.get_current_revision() == ScriptDirectory.from_config(
                alembic_config()
            ).get_current_head()
    assert {"users", "clients", "signing_keys", "tokens"} <= set(db.metadata.tables)
    assert differences == []


def test_downgrade_to_base_and_upgrade_again_round_trips(tmp_path):
    instance = tmp_path / "instance"
    with app_on(instance) as app:
        upgrade_database(app)
        at_head = schema_of(instance / "idp.sqlite3")
        with db.engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        tables = {name for kind, name, *_ in schema_of(instance / "idp.sqlite3")
                  if kind == "table"}
        assert tables == {"alembic_version"}
        upgrade_database(app)
    assert schema_of(instance / "idp.sqlite3") == at_head


def test_initialising_twice_in_process_keeps_data_and_keys(tmp_path):
    instance = tmp_path / "instance"
    with app_on(instance) as app:
        initialise(app)
        user = make_user()
        sub = user.sub
    database = instance / "idp.sqlite3"
    schema = schema_of(database)
    keys = rows_of(database, "SELECT kid, alg, retired_at FROM signing_keys ORDER BY kid")
    with app_on(instance) as app:
        initialise(app)
    assert schema_of(database) == schema
    assert rows_of(database, "SELECT sub FROM users") == [(sub,)]
    assert rows_of(database, "SELECT kid, alg, retired_at FROM signing_keys ORDER BY kid") == keys


def test_idp_init_on_an_existing_database_is_a_no_op_that_keeps_data(tmp_path):
    instance = tmp_path / "instance"
    with app_on(instance) as app:
        initialise(app)
        user = make_user()
        rp = make_client()
        expected_users = [(user.sub, user.email, user.password_hash)]
        client_id = rp.client.client_id
    database = instance / "idp.sqlite3"
    schema = schema_of(database)
    version = rows_of(database, "SELECT version_num FROM alembic_version")
    keys = rows_of(database, "SELECT * FROM signing_keys ORDER BY id")

    environ = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    environ.update(
        IDP_SERVER__INSTANCE_PATH=str(instance),
        IDP_SERVER__SECRET_KEY="test-secret",
        IDP_SECURITY__ENCRYPTION_KEYS=ENCRYPTION_KEY,
        IDP_SECURITY__ARGON2_TIME_COST="1",
        IDP_SECURITY__ARGON2_MEMORY_KIB="1024",
    )
    program = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "idp"]
    result = subprocess.run([*program, "init"], env=environ, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""

    assert schema_of(database) == schema
    assert rows_of(database, "SELECT version_num FROM alembic_version") == version
    assert rows_of(database, "SELECT sub, email, password_hash FROM users") == expected_users
    assert rows_of(database, "SELECT client_id FROM clients") == [(client_id,)]
    assert rows_of(database, "SELECT * FROM signing_keys ORDER BY id") == keys
