"""Legacy accounts: import throughput (rows/s) and the latency of a legacy-hash sign-in.

    .venv/bin/python -m bench.legacy_import [--rows 100000] [--samples 10] [--json FILE]

1. Writes a CSV of `--rows` legacy accounts with realistic hashes (bcrypt cost 10, Django
   and passlib PBKDF2, SHA-512-crypt, MD5-crypt, salted SHA-256, argon2id, and empty ones
   for "no password yet"), made once by the real libraries and reused (100,000 bcrypt
   hashes would take longer than the import), then times `idp users import`'s service
   function on a fresh SQLite database: the first import (all created) and the same file
   again (all unchanged: the idempotent path).
2. Times the password step of one sign-in (the POST, through the Flask test client, with
   production argon2id parameters) for a legacy username whose hash is bcrypt cost 10 or
   12: the first sign-in verifies bcrypt and re-hashes with argon2id; the next verifies
   argon2id. For comparison: an email account, and a wrong legacy password (padded).
Runs in a temporary folder, touches nothing else, and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import argon2
import bcrypt
from passlib.hash import django_pbkdf2_sha256, md5_crypt, pbkdf2_sha256, sha512_crypt

PASSWORD = "legacy pw 1"
REDIRECT_URI = "http://127.0.0.1:9/callback"


def sample_hashes() -> list[tuple[str, str]]:
    """(hash, salt) pairs in the mix a real export has; made once, reused for every row."""
    salt = secrets.token_hex(8)
    made = [(bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode(), "")
            for _ in range(4)]
    made += [
        (django_pbkdf2_sha256.hash(PASSWORD), ""),
        (pbkdf2_sha256.hash(PASSWORD), ""),
        (sha512_crypt.using(rounds=5000).hash(PASSWORD), ""),
        (md5_crypt.hash(PASSWORD), ""),
        (hashlib.sha256((salt + PASSWORD).encode()).hexdigest(), salt),
        (argon2.PasswordHasher().hash(PASSWORD), ""),
        ("", ""),  # no password yet
    ]
    return made


def write_csv(path: Path, rows: int) -> None:
    hashes = sample_hashes()
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["legacy_username", "email", "name", "phone", "contact_id",
                         "password_hash", "salt"])
        for number in range(rows):
            password_hash, salt = hashes[number % len(hashes)]
            email = "" if number % 10 == 9 else f"person{number}@example.org"
            writer.writerow([f"agent{number % 97}.user{number}", email, f"Person {number}",
                             f"555-{number % 10000:04d}", f"C{number:07d}", password_hash, salt])


def make_app(instance: Path) -> Any:
    from cryptography.fernet import Fernet

    from idp import create_app
    from idp.config import load_settings
    from idp.storage import initialise

    settings = load_settings(path="", environ={}, overrides={
        "server": {"instance_path": str(instance), "secret_key": secrets.token_urlsafe(32),
                   "environment": "production", "issuer": "http://127.0.0.1:5000"},
        "security": {"encryption_keys": [Fernet.generate_key().decode()]},
    })
    app = create_app(settings)
    initialise(app)
    return app


def time_import(app: Any, path: Path, rows: int) -> dict[str, Any]:
    from idp.legacy.importer import import_legacy_file
    from idp.portals import create_portal

    with app.app_context():
        create_portal("bench", "Bench MLS")
        started = time.perf_counter()
        first = import_legacy_file(path, "bench")
        first_seconds = time.perf_counter() - started
        assert first.created == rows and not first.errors, first.summary
        started = time.perf_counter()
        again = import_legacy_file(path, "bench")
        again_seconds = time.perf_counter() - started
        assert again.unchanged == rows, again.summary
    return {"rows": rows, "first_seconds": round(first_seconds, 2),
            "first_rows_per_second": round(rows / first_seconds),
            "reimport_seconds": round(again_seconds, 2),
            "reimport_rows_per_second": round(rows / again_seconds)}


def time_sign_ins(app: Any, samples: int) -> dict[str, Any]:
    from idp.clients import register_client
    from idp.db import db
    from idp.legacy.importer import import_legacy_accounts
    from idp.models import Portal
    from idp.portals import create_portal, update_portal
    from idp.users import create_user
    from tests.driver import authorize, follow_to_client, submit_form

    results: dict[str, Any] = {}
    with app.app_context():
        create_portal("signin", "Sign-in MLS")
        # Before the migration date: the legacy sign-in completes as it always did.
        update_portal("signin", {"email_username_migration_from": "2999-01-01"})
        client = register_client(name="Bench", redirect_uris=[REDIRECT_URI],
                                 portal_slug="signin", first_party=True).client
        client_id = client.client_id
        create_user("email.person@example.org", "an email account password", "E")
        portal = db.session.execute(db.select(Portal).filter_by(slug="signin")).scalar_one()
        rows = []
        for cost in (10, 12):
            stored = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(cost)).decode()
            rows += [{"legacy_username": f"cost{cost}-{n}", "email": "", "password_hash": stored}
                     for n in range(samples)]
        import_legacy_accounts(portal, enumerate(rows, start=2))

        def post_seconds(username: str, password: str) -> float:
            http = app.test_client()
            page = follow_to_client(http, authorize(http, client_id,
                                                    redirect_uri=REDIRECT_URI))
            started = time.perf_counter()
            response = submit_form(http, page, email=username, password=password)
            elapsed = time.perf_counter() - started
            assert response.status_code in (200, 303), response.status_code
            return elapsed

        def summary(values: list[float]) -> dict[str, float]:
            ordered = sorted(values)
            return {"median_ms": round(statistics.median(ordered) * 1000, 1),
                    "max_ms": round(ordered[-1] * 1000, 1)}

        for cost in (10, 12):
            first = [post_seconds(f"cost{cost}-{n}", PASSWORD) for n in range(samples)]
            again = [post_seconds(f"cost{cost}-{n}", PASSWORD) for n in range(samples)]
            results[f"legacy bcrypt {cost}, first sign-in (verify + argon2id re-hash)"] = \
                summary(first)
            results[f"legacy bcrypt {cost}, later sign-ins (argon2id)"] = summary(again)
            bcrypt_only = []
            for _ in range(samples):
                started = time.perf_counter()
                bcrypt.checkpw(PASSWORD.encode(), rows[0 if cost == 10 else samples]
                               ["password_hash"].encode())
                bcrypt_only.append(time.perf_counter() - started)
            results[f"bcrypt {cost} verify alone (floor)"] = summary(bcrypt_only)
        results["email account sign-in (argon2id)"] = summary(
            [post_seconds("email.person@example.org", "an email account password")
             for _ in range(samples)])
        results["wrong legacy password (answered no sooner than the slowest failure)"] = \
            summary([post_seconds("cost12-0", "wrong password") for _ in range(samples)])
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--json", help="also write the results as JSON to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="idp-legacy-bench-") as workdir:
        folder = Path(workdir)
        path = folder / "legacy.csv"
        started = time.perf_counter()
        write_csv(path, args.rows)
        print(f"wrote {args.rows} rows in {time.perf_counter() - started:.1f} s "
              f"({path.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
        app = make_app(folder / "instance")
        imported = time_import(app, path, args.rows)
        sign_ins = time_sign_ins(app, args.samples)
    print("| import | rows | seconds | rows/s |\n|---|---:|---:|---:|")
    print(f"| first import (all created) | {imported['rows']} | {imported['first_seconds']} | "
          f"{imported['first_rows_per_second']} |")
    print(f"| same file again (all unchanged) | {imported['rows']} | "
          f"{imported['reimport_seconds']} | {imported['reimport_rows_per_second']} |")
    print("\n| password step (POST) | median ms | max ms |\n|---|---:|---:|")
    for name, values in sign_ins.items():
        print(f"| {name} | {values['median_ms']} | {values['max_ms']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"import": imported, "sign_in": sign_ins},
                                              indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
