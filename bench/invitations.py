"""Bulk invitation: how long until 10,000 invitations are queued for sending.

    .venv/bin/python -m bench.invitations [--people 10000]

Does what `idp invitations bulk FILE.csv --portal SLUG` does (read the CSV, then
`bulk_invite`: check each row, create the invitation and its single-use link, queue the
email in the outbox) and times it from the file's text to the last commit. Sending is the
worker's job (`idp worker`) and is not part of it. `make bench` runs it on the benchmark's
database, beside its 1,000,000 people; alone it uses a fresh one in a temporary folder.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def invitation_csv(people: int) -> str:
    """A spreadsheet export: email, name and the portal's contact id, one row a person."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Email", "Name", "Contact ID"])
    for n in range(people):
        writer.writerow([f"invitee{n}@members.example", f"Invitee {n}", f"M{n:07d}"])
    return out.getvalue()


def time_bulk_invitation(app: Any, people: int, slug: str = "bench-invite") -> dict[str, Any]:
    """Seconds from the CSV's text to every invitation queued; checks the outbox count."""
    from idp.db import db
    from idp.invitations import bulk_invite, read_invitation_csv
    from idp.models.outbox import QUEUED, OutboxMessage
    from idp.portals import create_portal

    text = invitation_csv(people)
    with app.app_context():
        portal = create_portal(slug, "Bench Invitations")
        queued_before = _queued(db, OutboxMessage, QUEUED)
        started = time.perf_counter()
        result = bulk_invite(portal, read_invitation_csv(text))
        seconds = time.perf_counter() - started
        queued = _queued(db, OutboxMessage, QUEUED) - queued_before
    totals = result.totals
    assert totals["sent"] == people and queued == people, (totals, queued)
    return {"people": people, "seconds": round(seconds, 2),
            "per_second": round(people / seconds), "queued": queued}


def _queued(db: Any, model: Any, status: str) -> int:
    return int(db.session.scalar(db.select(db.func.count(model.id)).where(
        model.status == status)) or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    args = parser.parse_args(argv)
    from bench.legacy_import import make_app

    with tempfile.TemporaryDirectory(prefix="idp-invite-bench-") as workdir:
        app = make_app(Path(workdir) / "instance")
        result = time_bulk_invitation(app, args.people)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
