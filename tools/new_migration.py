"""Start a new Alembic revision from the difference between the models and the head schema.

Usage: .venv/bin/python tools/new_migration.py "add the foo column to users"

Migrates a scratch SQLite database to the current head, compares it with the models and
writes idp/migrations/versions/NNNN_<message>.py with the next number. Read and finish it
by hand: autogenerate misses renames (it drops and adds), data moves, server defaults for
existing rows, and anything dialect-specific (see 0002's triggers). Then run the suite on
both databases (`make test` and `make test-postgres`); tests/test_migrations.py checks that
the new head matches the models and that a database of the first revision, with data in it,
upgrades to it. docs/operations.md ("Schema migrations") has the whole procedure.
"""

from __future__ import annotations

import re
import sys
import tempfile

from alembic import command
from alembic.script import ScriptDirectory

from idp import create_app
from idp.config import load_settings
from idp.db import db
from idp.storage import alembic_config, upgrade_database


def main(message: str) -> None:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head() or "0000"
    rev_id = f"{int(head) + 1:04d}"
    with tempfile.TemporaryDirectory() as instance:
        settings = load_settings(path="", environ={},
                                 overrides={"server": {"instance_path": instance}})
        app = create_app(settings)
        upgrade_database(app)
        with app.app_context(), db.engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            script = command.revision(config, message=message, autogenerate=True,
                                      rev_id=rev_id)
    print(f"wrote {getattr(script, 'path', rev_id)}: read it, finish it, test it on both "
          "databases")


if __name__ == "__main__":
    if len(sys.argv) != 2 or not re.search(r"\w", sys.argv[1]):
        sys.exit('usage: tools/new_migration.py "what the revision changes"')
    main(sys.argv[1])
