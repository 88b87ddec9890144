"""Regenerate idp/migrations/versions/0001_initial_schema.py from the models.

Only while nothing has been released (this session's work lands as one first revision).
Once a release exists, schema changes get their own Alembic revisions instead.
Usage: .venv/bin/python tools/regenerate_initial_migration.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from alembic import command

from idp import create_app
from idp.config import load_settings
from idp.db import db
from idp.storage import alembic_config

VERSION = Path(__file__).resolve().parent.parent / "idp/migrations/versions/0001_initial_schema.py"


def main() -> None:
    VERSION.unlink(missing_ok=True)
    # Later hand-written revisions (e.g. 0002's triggers) step aside while 0001 is rebuilt.
    later = [p for p in VERSION.parent.glob("0*.py") if p != VERSION]
    parked = Path(tempfile.mkdtemp())
    for path in later:
        shutil.move(str(path), parked / path.name)
    try:
        _generate()
    finally:
        for path in later:
            shutil.move(str(parked / path.name), path)


def _generate() -> None:
    with tempfile.TemporaryDirectory() as instance:
        settings = load_settings(path="", environ={},
                                 overrides={"server": {"instance_path": instance}})
        app = create_app(settings)
        with app.app_context(), db.engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.revision(config, message="initial schema", autogenerate=True, rev_id="0001")
    text = VERSION.read_text().replace("Revises: \n", "Revises:\n")
    VERSION.write_text(text)
    print(f"regenerated {VERSION}")


if __name__ == "__main__":
    main()
