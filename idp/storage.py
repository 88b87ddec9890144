"""Schema migrations (Alembic) and first-start initialisation."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from flask import Flask

from idp.db import db

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade_database(app: Flask, revision: str = "head") -> None:
    """Bring the database schema to `revision` (idempotent)."""
    with app.app_context():
        if db.engine.url.get_backend_name() == "sqlite" and db.engine.url.database:
            Path(db.engine.url.database).parent.mkdir(parents=True, exist_ok=True)
        with db.engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)


def initialise(app: Flask) -> None:
    """What every start needs: the schema at head and signing keys present."""
    upgrade_database(app)
    with app.app_context():
        app.extensions["idp"].keys.ensure_keys()
