"""Alembic environment: runs inside the Flask app context and uses its engine."""

from __future__ import annotations

from typing import Any

from alembic import context
from flask import current_app

from idp import models  # noqa: F401  (registers every table on the metadata)
from idp.db import db

config = context.config


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        with db.engine.connect() as connection:
            _run(connection)
    else:
        _run(connectable)


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=db.metadata,
        render_as_batch=True,  # SQLite can only ALTER through table copies
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


assert current_app, "migrations run inside the app context (idp init)"
run_migrations_online()
