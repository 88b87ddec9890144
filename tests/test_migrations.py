"""Alembic migrations: head matches the models, a database of the first revision upgrades
to head with its data, and `idp init` on a live database is a no-op. On SQLite and, with
IDP_TEST_DATABASE_URL, on PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy import MetaData, Table, create_engine, inspect, select, text
from sqlalchemy.engine import Connection

from idp import create_app
from idp.db import db
from idp.models import SigningKey, User
from idp.oidc.keys import generate_jwk
from idp.storage import alembic_config, initialise, upgrade_database
from tests.conftest import ENCRYPTION_KEY, make_settings
from tests.databases import ON_POSTGRES
from tests.factories import PASSWORD, make_client, make_user

CONSOLE_SCRIPT = Path(sys.executable).with_name("idp")
FIRST_REVISION = "0001"


@contextmanager
def app_on(instance: Path) -> Iterator[Flask]:
    application = create_app(make_settings(instance))
    with application.app_context():
        try:
            yield application
        finally:
            db.session.remove()
            db.engine.dispose()


@contextmanager
def connect(instance: Path) -> Iterator[Connection]:
    """A plain connection to the instance's database, outside any app."""
    engine = create_engine(make_settings(instance).database_url)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def schema_of(instance: Path) -> list[tuple[Any, ...]]:
    """Every table, column, index, constraint and trigger, in a stable order."""
    with connect(instance) as connection:
        if connection.dialect.name == "sqlite":
            return [tuple(row) for row in connection.execute(text(
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
            ))]
        inspector = inspect(connection)
        schema: list[tuple[Any, ...]] = []
        for table in sorted(inspector.get_table_names()):
            schema += [("column", table, c["name"], str(c["type"]), c["nullable"])
                       for c in inspector.get_columns(table)]
            schema += [("index", table, i["name"], tuple(i["column_names"]), i["unique"])
                       for i in inspector.get_indexes(table)]
            schema += [("fk", table, f["name"], tuple(f["constrained_columns"]),
                        f["referred_table"]) for f in inspector.get_foreign_keys(table)]
            schema += [("unique", table, u["name"], tuple(u["column_names"]))
                       for u in inspector.get_unique_constraints(table)]
        schema += [("trigger", *row) for row in connection.execute(text(
            "SELECT event_object_table, trigger_name, event_manipulation "
            "FROM information_schema.triggers ORDER BY 1, 2, 3"
        ))]
        return sorted(schema, key=repr)


def rows_of(instance: Path, sql: str) -> list[tuple[Any, ...]]:
    with connect(instance) as connection:
        return [tuple(row) for row in connection.execute(text(sql))]


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
        at_head = schema_of(instance)
        with db.engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        with db.engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) == {"alembic_version"}
        upgrade_database(app)
    assert schema_of(instance) == at_head


# -- a database made by the first revision, with data, upgraded to head ----------------------

# Realistic values where a column of that name exists at the first revision; every other
# column gets a plain value of its type. Written against the schema the database has, not
# the models of today, so it keeps working as later revisions change the models.
def _realistic_values(app: Flask) -> dict[str, dict[str, Any]]:
    idp = app.extensions["idp"]
    key = generate_jwk("RS256", "first-revision-key")
    return {
        "users": {"email": "pat@example.org", "sub": "sub-of-pat",
                  "password_hash": idp.passwords.hash(PASSWORD), "is_active": True,
                  "email_verified": True},
        "signing_keys": {
            "kid": "first-revision-key", "alg": "RS256", "retired_at": None,
            "private_jwk_encrypted": idp.encryptor.encrypt(
                json.dumps(key.as_dict(private=True)).encode()),
            "public_jwk": key.as_dict(private=False),
        },
        "clients": {"client_id": "first-revision-client"},
    }


def _plain_value(table: Table, column: Any, pk_values: dict[str, Any]) -> Any:
    """A value of the column's type that satisfies its constraints, for a one-row table."""
    for fk in column.foreign_keys:
        return pk_values[fk.column.table.name][fk.column.name]
    try:
        kind = column.type.python_type
    except NotImplementedError:
        kind = str
    if kind is bool:
        return False
    if kind is int:
        return 1
    if kind is float:
        return 1.0
    if kind is datetime:
        return datetime(2026, 1, 2, 3, 4, 5)
    if kind is date:
        return date(2026, 1, 2)
    if kind is dict:
        return {"from": table.name}
    if kind is list:
        return [table.name]
    if kind is bytes:
        return b"\x00\x01"
    value = f"{table.name}.{column.name}"
    length = getattr(column.type, "length", None)
    return value[:length] if length else value


def fill_every_table(connection: Connection, realistic: dict[str, dict[str, Any]]) -> None:
    """One row in every table, foreign keys pointing at the other tables' rows."""
    metadata = MetaData()
    metadata.reflect(connection)
    pk_values: dict[str, dict[str, Any]] = {}
    for table in metadata.sorted_tables:
        if table.name == "alembic_version":
            continue
        wanted = realistic.get(table.name, {})
        # Integer ids come from the database (PostgreSQL's sequences must move on too).
        generated = {c.name for c in table.primary_key.columns
                     if len(table.primary_key.columns) == 1 and c.autoincrement in (True, "auto")
                     and c.type.python_type is int}
        row = {column.name: wanted[column.name] if column.name in wanted
               else _plain_value(table, column, pk_values)
               for column in table.columns if column.name not in generated}
        result = connection.execute(table.insert().values(**row))
        pk_values[table.name] = {**row, **result.inserted_primary_key._asdict()}


def table_rows(instance: Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table (but alembic_version), as dictionaries."""
    with connect(instance) as connection:
        metadata = MetaData()
        metadata.reflect(connection)
        return {
            name: [dict(row._mapping) for row in connection.execute(select(table))]
            for name, table in metadata.tables.items() if name != "alembic_version"
        }


def test_a_database_of_the_first_revision_upgrades_to_head_keeping_its_data(tmp_path):
    instance = tmp_path / "instance"
    with app_on(instance) as app:
        upgrade_database(app, FIRST_REVISION)
        with db.engine.begin() as connection:
            fill_every_table(connection, _realistic_values(app))
    before = table_rows(instance)
    assert before["users"][0]["email"] == "pat@example.org"
    assert all(len(rows) == 1 for rows in before.values()), before

    with app_on(instance) as app:
        initialise(app)  # what `idp init` does on every deployment
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert rows_of(instance, "SELECT version_num FROM alembic_version") == [(head,)]
        # The data is usable through today's models: the person signs in with the same
        # password, and the signing key of the first revision still decrypts and signs.
        user = db.session.execute(select(User).filter_by(email="pat@example.org")).scalar_one()
        assert app.extensions["idp"].passwords.verify(user.password_hash, PASSWORD)
        assert app.extensions["idp"].keys.signing_key("RS256").kid == "first-revision-key"
        assert db.session.scalars(select(SigningKey)).all()
        for mapper in db.Model.registry.mappers:
            db.session.execute(select(mapper.class_)).all()  # every model loads its rows

    after = table_rows(instance)
    for name, (row,) in before.items():
        assert name in after, f"table {name} disappeared"
        same = [r for r in after[name] if all(r.get(c) == v for c, v in row.items()
                                              if c in r)]
        assert len(same) == 1, (name, row, after[name])


# -- idp init on a live database --------------------------------------------------------------


def test_initialising_twice_in_process_keeps_data_and_keys(tmp_path):
    instance = tmp_path / "instance"
    with app_on(instance) as app:
        initialise(app)
        user = make_user()
        sub = user.sub
    schema = schema_of(instance)
    keys = rows_of(instance, "SELECT kid, alg, retired_at FROM signing_keys ORDER BY kid")
    with app_on(instance) as app:
        initialise(app)
    assert schema_of(instance) == schema
    assert rows_of(instance, "SELECT sub FROM users") == [(sub,)]
    assert rows_of(instance, "SELECT kid, alg, retired_at FROM signing_keys ORDER BY kid") == keys


def test_idp_init_on_an_existing_database_is_a_no_op_that_keeps_data(tmp_path):
    instance = tmp_path / "instance"
    with app_on(instance) as app:
        initialise(app)
        user = make_user()
        rp = make_client()
        expected_users = [(user.sub, user.email, user.password_hash)]
        client_id = rp.client.client_id
        database_url = app.extensions["idp"].settings.database.url
    schema = schema_of(instance)
    version = rows_of(instance, "SELECT version_num FROM alembic_version")
    keys = rows_of(instance, "SELECT * FROM signing_keys ORDER BY id")

    environ = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    environ.update(
        IDP_SERVER__INSTANCE_PATH=str(instance),
        IDP_SERVER__SECRET_KEY="test-secret",
        IDP_SECURITY__ENCRYPTION_KEYS=ENCRYPTION_KEY,
        IDP_SECURITY__ARGON2_TIME_COST="1",
        IDP_SECURITY__ARGON2_MEMORY_KIB="1024",
    )
    if ON_POSTGRES:
        environ["IDP_DATABASE__URL"] = database_url
    program = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "idp"]
    result = subprocess.run([*program, "init"], env=environ, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""

    assert schema_of(instance) == schema
    assert rows_of(instance, "SELECT version_num FROM alembic_version") == version
    assert rows_of(instance, "SELECT sub, email, password_hash FROM users") == expected_users
    assert rows_of(instance, "SELECT client_id FROM clients") == [(client_id,)]
    assert rows_of(instance, "SELECT * FROM signing_keys ORDER BY id") == keys
