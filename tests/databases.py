"""The databases tests run on: SQLite files by default, PostgreSQL when asked.

`IDP_TEST_DATABASE_URL=postgresql+psycopg://USER@HOST:PORT/DBNAME` runs the suite on that
PostgreSQL server (`make test-postgres`). The named database is only connected to: the
suite creates its own databases beside it, named `idp_test_<host>_<pid>_...`, and drops
them again (and those of killed runs on this host, next time), so the role needs CREATEDB.
A variable of its own, not `IDP_DATABASE__URL`, so a shell set up for `idp serve` never
points the suite at a real database.

A test's database belongs to its instance folder, as SQLite's file does:

- `template.copy_to(instance)` gives the instance a migrated database with signing keys.
  SQLite copies the template file. PostgreSQL hands out one working database per session,
  put back to the template's state before each test in one round trip: DELETE of every
  table (in `session_replication_role = replica` when the role is a superuser, so the audit
  log's append-only trigger stays out of it; else that table is TRUNCATEd), the template's
  rows inserted again, sequences rewound. Measured: ~1 ms, where TRUNCATE of every table
  takes ~100 ms and `CREATE DATABASE ... TEMPLATE` plus `DROP DATABASE` ~200 ms a test.
  A second copy in the same test is a real `CREATE DATABASE ... TEMPLATE`.
- `url_for(instance)` of an instance that got no copy is an empty database (a new SQLite
  file; on PostgreSQL a new database, dropped when the test ends).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL, make_url

TEST_DATABASE_URL = os.environ.get("IDP_TEST_DATABASE_URL", "")
ON_POSTGRES = bool(TEST_DATABASE_URL)
if ON_POSTGRES and make_url(TEST_DATABASE_URL).get_backend_name() != "postgresql":
    raise pytest.UsageError("IDP_TEST_DATABASE_URL: only postgresql+psycopg:// URLs are supported")

# This host's databases: another machine's test run may share the server.
HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_NAME = re.compile(rf"^idp_test_{HOST}_(\d+)_")


def _libpq(url: URL) -> str:
    """The URL psycopg itself takes (no "+psycopg" driver suffix)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class PostgresServer:
    """Creates and drops the suite's databases on the server of IDP_TEST_DATABASE_URL."""

    url: URL
    prefix: str
    created: list[str] = field(default_factory=list)
    _admin: Any = None

    @classmethod
    def from_environment(cls) -> PostgresServer:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        return cls(make_url(TEST_DATABASE_URL), f"idp_test_{HOST}_{os.getpid()}_{worker}")

    @property
    def admin(self) -> Any:
        import psycopg

        if self._admin is None:
            self._admin = psycopg.connect(_libpq(self.url), autocommit=True)
        return self._admin

    def url_of(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def create(self, suffix: str, template: str = "template0") -> str:
        name = f"{self.prefix}_{suffix}"
        self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self.created.append(name)
        return name

    def drop(self, name: str) -> None:
        self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.created:
            self.created.remove(name)

    def drop_leftovers(self) -> None:
        """Databases of earlier runs that were killed before they could clean up."""
        rows = self.admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'idp\\_test\\_%'"
        ).fetchall()
        for (name,) in rows:
            match = _NAME.match(name)
            if match and int(match.group(1)) != os.getpid() and not _running(int(match.group(1))):
                self.drop(name)

    def close(self) -> None:
        for name in list(self.created):
            self.drop(name)
        if self._admin is not None:
            self._admin.close()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class _Snapshot:
    """What the migrated template holds, to put the working database back to it."""

    tables: list[str]  # children before parents: the order to delete in
    truncated: list[str]  # tables whose triggers refuse DELETE (the append-only audit log)
    rows: dict[str, tuple[list[str], list[tuple[Any, ...]]]]
    sequences: list[tuple[str, int, bool]]  # (name, value, is_called) for setval


class DatabaseRegistry:
    """The session's template and every test's databases, by instance folder."""

    def __init__(self) -> None:
        self.by_instance: dict[Path, str] = {}
        self._server: PostgresServer | None = None
        self._extra: list[str] = []  # databases to drop when the test ends
        self._working_in_use = False
        self._counter = 0
        self._snapshot: _Snapshot | None = None
        self._reset_script: bytes | None = None
        self._reset_connection: Any = None
        self.template_name = ""
        self.working_name = ""

    @property
    def server(self) -> PostgresServer:
        if self._server is None:
            self._server = PostgresServer.from_environment()
            self._server.drop_leftovers()
        return self._server

    # -- session ----------------------------------------------------------------------

    def start_template(self, instance: Path) -> None:
        """Before migrating the session's template in `instance` (PostgreSQL: create it)."""
        if ON_POSTGRES:
            self.template_name = self.server.create("template")
            self.by_instance[instance.resolve()] = self.template_name

    def finish_template(self, instance: Path) -> None:
        """After migration: freeze the template (PostgreSQL: make the working copy)."""
        if not ON_POSTGRES:
            return
        del self.by_instance[instance.resolve()]
        self._snapshot = self._read_snapshot(self.server.url_of(self.template_name))
        self.working_name = self.server.create("working", template=self.template_name)

    def close(self) -> None:
        if self._reset_connection is not None:
            self._reset_connection.close()
        if self._server is not None:
            self._server.close()

    # -- per test ---------------------------------------------------------------------

    def copy_to(self, template_file: Path, instance: Path) -> None:
        """Give `instance` a migrated database with the template's signing keys."""
        instance.mkdir(parents=True, exist_ok=True)
        if not ON_POSTGRES:
            shutil.copy(template_file, instance / "idp.sqlite3")
            return
        if not self._working_in_use:
            self._reset_working()
            self._working_in_use = True
            self.by_instance[instance.resolve()] = self.working_name
            return
        self._counter += 1
        name = self.server.create(f"copy{self._counter}", template=self.template_name)
        self._extra.append(name)
        self.by_instance[instance.resolve()] = name

    def url_for(self, instance: Path) -> str | None:
        """The database URL of `instance` on PostgreSQL (None: SQLite in the folder)."""
        if not ON_POSTGRES:
            return None
        key = Path(instance).resolve()
        if key not in self.by_instance:
            self._counter += 1
            name = self.server.create(f"empty{self._counter}")
            self._extra.append(name)
            self.by_instance[key] = name
        return self.server.url_of(self.by_instance[key])

    def end_test(self) -> None:
        """Forget the test's instances; drop the databases made only for it."""
        for name in self._extra:
            self.server.drop(name)
        self._extra.clear()
        self.by_instance = {k: v for k, v in self.by_instance.items() if v == self.template_name}
        self._working_in_use = False


    # -- PostgreSQL internals -----------------------------------------------------------

    def _read_snapshot(self, url: str) -> _Snapshot:
        from sqlalchemy import create_engine, text

        from idp.db import db

        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                names = set(connection.execute(text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                )).scalars())
                ordered = [t.name for t in reversed(db.metadata.sorted_tables) if t.name in names]
                tables = ordered + sorted(names - set(ordered) - {"alembic_version"})
                rows: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
                for table in tables:
                    result = connection.execute(text(f'SELECT * FROM "{table}"'))
                    data = [tuple(row) for row in result]
                    if data:
                        rows[table] = (list(result.keys()), data)
                truncated = sorted(set(connection.execute(text(
                    "SELECT event_object_table FROM information_schema.triggers "
                    "WHERE event_manipulation = 'DELETE'"
                )).scalars()))
                sequences = [
                    (f'"{schema}"."{name}"', start if last is None else last, last is not None)
                    for schema, name, start, last in connection.execute(text(
                        "SELECT schemaname, sequencename, start_value, last_value "
                        "FROM pg_sequences"
                    ))
                ]
        finally:
            engine.dispose()
        tables = [t for t in tables if t not in truncated]
        return _Snapshot(tables, truncated, rows, sequences)

    def _reset_working(self) -> None:
        """Delete every row, put back the template's rows and rewind the sequences."""
        import psycopg

        if self._reset_script is None:
            self._reset_connection = psycopg.connect(_libpq(make_url(
                self.server.url_of(self.working_name))))
            self._reset_script = self._build_reset_script(self._reset_connection)
        for attempt in (1, 2):
            try:
                with self._reset_connection.transaction():  # one round trip
                    self._reset_connection.execute(self._reset_script)
                return
            except psycopg.errors.LockNotAvailable:
                if attempt == 2:
                    raise
                # A connection a previous test leaked still holds row locks: end it.
                self.server.admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid NOT IN (pg_backend_pid(), %s)",
                    (self.working_name, self._reset_connection.info.backend_pid),
                )

    def _build_reset_script(self, connection: Any) -> bytes:
        from psycopg import sql
        from psycopg.types.json import Json

        assert self._snapshot is not None
        snapshot = self._snapshot
        superuser = connection.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()[0]
        connection.commit()
        statements = [sql.SQL("SET LOCAL lock_timeout = '2s'")]
        deleted = snapshot.tables
        if superuser:
            # Replica mode fires no ordinary triggers (the audit log's refusal) and no
            # foreign-key checks: plain DELETEs, far cheaper than TRUNCATE.
            statements.append(sql.SQL("SET LOCAL session_replication_role = replica"))
            deleted = snapshot.truncated + snapshot.tables
        elif snapshot.truncated:  # TRUNCATE fires no row triggers
            statements.append(sql.SQL("TRUNCATE {} CASCADE").format(
                sql.SQL(", ").join(map(sql.Identifier, snapshot.truncated))))
        statements += [sql.SQL("DELETE FROM {}").format(sql.Identifier(t)) for t in deleted]
        for table, (columns, rows) in snapshot.rows.items():
            values = [
                sql.SQL("({})").format(sql.SQL(", ").join(
                    sql.Literal(Json(v) if isinstance(v, dict | list) else v) for v in row
                ))
                for row in rows
            ]
            statements.append(sql.SQL("INSERT INTO {} ({}) VALUES {}").format(
                sql.Identifier(table),
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.SQL(", ").join(values),
            ))
        statements += [
            sql.SQL("SELECT setval({}::regclass, {}, {})").format(
                sql.Literal(name), sql.Literal(value), sql.Literal(called))
            for name, value, called in snapshot.sequences
        ]
        return sql.SQL(";\n").join(statements).as_bytes(connection)


@dataclass(frozen=True)
class TemplateDatabase:
    """The `template_database` fixture: a migrated database with signing keys."""

    file: Path  # the SQLite template (not used on PostgreSQL)
    registry: DatabaseRegistry

    def copy_to(self, instance: Path) -> None:
        """A private copy for `instance` (the folder is created if needed)."""
        self.registry.copy_to(self.file, instance)


registry = DatabaseRegistry()
