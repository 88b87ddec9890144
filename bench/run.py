"""`make bench`: the IdP under gunicorn (2 workers) on loopback, driven scenario by scenario.

For each scenario: throughput, latency percentiles, errors, server CPU seconds per operation
(from the worker processes' own CPU counters, so the load generator's CPU is not counted),
peak RSS per worker, and the ratio to the cryptographic floor measured in the same run.
Writes bench/results/latest.json and bench/results/latest.md. Loopback only; bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PASSWORD = "bench password that is long enough"
REDIRECT_URI = "http://127.0.0.1:9/callback"  # never contacted: the code is read from Location

# Keycloak's published sizing (high-availability guide, keycloak-benchmark): per vCPU, with TLS.
KEYCLOAK_PER_VCPU = {"password_sign_in": 15, "client_credentials": 120, "refresh": 120}
KEYCLOAK_PER_VCPU["totp_sign_in"] = 15  # its sizing does not separate OTP sign-ins
SCENARIOS = ["password_sign_in", "totp_sign_in", "client_credentials", "refresh", "userinfo",
             "introspection", "discovery"]
# Floors measured by the run the targets were first checked against (2026-11-22, commit
# 2aa75ae). Shared machines differ several-fold in speed, and not by one factor: argon2id
# is bound by memory, RS256 by big-number arithmetic. When this machine is slower, the
# table also gives its per-core figures scaled by both ratios: a range, an estimate.
REFERENCE_FLOORS = {"argon2id_verify_s": 0.014035, "rs256_sign_s": 0.000203}
MFA_USERS = 2000  # a TOTP code works once: enough people that none comes back within 30 s
JOBS = ["invitations", "legacy_import"]
TARGETS = {"invitations": "< 10 s", "legacy_import": ">= 5,000 rows/s"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(workdir: Path, port: int) -> Path:
    from cryptography.fernet import Fernet

    config = workdir / "config.toml"
    config.write_text(
        f'[server]\nissuer = "http://127.0.0.1:{port}"\nenvironment = "production"\n'
        f'secret_key = "{secrets.token_urlsafe(32)}"\ninstance_path = "{workdir}"\n'
        f'[security]\nencryption_keys = ["{Fernet.generate_key().decode()}"]\n'
    )
    return config


def prepare_database(config: Path, users: int, mfa_users: int = 0) -> dict[str, Any]:
    """Migrate, create the bench clients and seed `users` people; returns the target.

    With `mfa_users`, also a portal that requires MFA, its client, and that many people
    with a confirmed authenticator app (TOTP), for the "sign-in with TOTP" scenario.
    """
    os.environ["IDP_CONFIG"] = str(config)
    from idp import create_app
    from idp.clients import register_client
    from idp.db import db
    from idp.storage import initialise

    app = create_app()
    initialise(app)
    with app.app_context():
        rp = register_client(name="Bench Portal", redirect_uris=[REDIRECT_URI],
                             first_party=True, scopes=["openid", "profile", "email", "introspect"])
        service = register_client(name="Bench Service", redirect_uris=[],
                                  grant_types=["client_credentials"], scopes=["reports"])
        password_hash = app.extensions["idp"].passwords.hash(PASSWORD)
        database = db.engine.url.database
        target: dict[str, Any] = {
            "client_id": rp.client.client_id, "client_secret": rp.client_secret,
            "redirect_uri": REDIRECT_URI, "service_id": service.client.client_id,
            "service_secret": service.client_secret,
        }
        if mfa_users:
            target.update(seed_totp_users(app, mfa_users, password_hash))
        db.engine.dispose()
    seed_users(database, users, password_hash)
    return target


def seed_totp_users(app: Any, count: int, password_hash: str) -> dict[str, Any]:
    """A portal requiring MFA, its client, and `count` people with an authenticator app."""
    import pyotp

    from idp.clients import register_client
    from idp.db import db
    from idp.models import MfaMethod, User
    from idp.portals import create_portal, update_portal

    create_portal("bench-mfa", "Bench MFA")
    update_portal("bench-mfa", {"mfa_required_from": "2000-01-01", "mfa_methods": "totp"})
    rp = register_client(name="Bench MFA Portal", redirect_uris=[REDIRECT_URI],
                         portal_slug="bench-mfa", first_party=True,
                         scopes=["openid", "profile", "email"])
    encryptor = app.extensions["idp"].encryptor
    people = []
    for n in range(count):
        secret = pyotp.random_base32(32)
        user = User(sub=secrets.token_urlsafe(16), email=f"mfa{n}@bench.example",
                    email_verified=True, name=f"MFA Person {n}", password_hash=password_hash)
        db.session.add(user)
        db.session.flush()
        db.session.add(MfaMethod(user_id=user.id, kind="totp", confirmed_at=user.created_at,
                                 secret_encrypted=encryptor.encrypt(secret.encode("ascii"))))
        people.append({"email": user.email, "password": PASSWORD, "totp_secret": secret})
    db.session.commit()
    return {"mfa_client_id": rp.client.client_id, "mfa_client_secret": rp.client_secret,
            "mfa_users": people}


def seed_users(database: str, count: int, password_hash: str, start: int = 0) -> None:
    """Insert people `start`..`count-1` in bulk (one hash for all: seeding is not the test)."""
    connection = sqlite3.connect(database)
    batch = 50_000
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    with connection:
        for first in range(start, count, batch):
            rows = [
                (secrets.token_urlsafe(16), f"person{n}@bench.example", 1, f"Person {n}",
                 0, password_hash, now)
                for n in range(first, min(first + batch, count))
            ]
            connection.executemany(
                "INSERT INTO users (sub, email, email_verified, name, phone_verified,"
                " password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    connection.close()


def start_server(config: Path, port: int, workers: int,
                 extra: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    # WARNING: no JSON line per request on the terminal (production logs them at INFO).
    env = {**os.environ, "IDP_CONFIG": str(config), "IDP_SERVER__LOG_LEVEL": "WARNING"}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "-w", str(workers), "-b",
         f"127.0.0.1:{port}", "--log-level", "warning", *extra, "wsgi:app"],
        cwd=ROOT, env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/jwks", timeout=2).ok:
                return process
        except requests.RequestException:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("gunicorn did not start")


def worker_processes(server: subprocess.Popen[bytes]) -> list[psutil.Process]:
    return psutil.Process(server.pid).children()


def cpu_split(processes: list[psutil.Process]) -> tuple[float, float]:
    """(user, system) CPU seconds of `processes` so far."""
    user = system = 0.0
    for process in processes:
        times = process.cpu_times()
        user, system = user + times.user, system + times.system
    return user, system


def measure_floors() -> dict[str, float]:
    """Seconds for one argon2id verify (configured parameters) and one RS256/ES256 signature."""
    from argon2 import PasswordHasher
    from joserfc import jwt
    from joserfc.jwk import ECKey, RSAKey

    from idp.config import SecuritySettings

    s = SecuritySettings()
    hasher = PasswordHasher(time_cost=s.argon2_time_cost, memory_cost=s.argon2_memory_kib,
                            parallelism=s.argon2_parallelism)
    stored = hasher.hash(PASSWORD)
    argon = _median_time(lambda: hasher.verify(stored, PASSWORD), 15)
    rsa = RSAKey.generate_key(2048, private=True)
    ec = ECKey.generate_key("P-256", private=True)
    claims = {"iss": "x", "sub": "y", "aud": "z", "iat": 1, "exp": 2}
    rs256 = _median_time(lambda: jwt.encode({"alg": "RS256"}, claims, rsa, ["RS256"]), 200)
    es256 = _median_time(lambda: jwt.encode({"alg": "ES256"}, claims, ec, ["ES256"]), 200)
    return {"argon2id_verify_s": argon, "rs256_sign_s": rs256, "es256_sign_s": es256}


def _median_time(action: Any, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def run_scenario(name: str, target_file: Path, server: subprocess.Popen[bytes],
                 duration: float, concurrency: int) -> dict[str, Any]:
    workers = worker_processes(server)
    load = subprocess.Popen(
        [sys.executable, "-m", "bench.load", name, "--target", str(target_file),
         "--duration", str(duration), "--concurrency", str(concurrency)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    assert load.stderr is not None and load.stdin is not None
    ready = load.stderr.readline()
    if ready.strip() != "READY":
        load.kill()
        raise RuntimeError(f"{name}: load generator failed: {ready}{load.stderr.read()}")
    peak_rss = {w.pid: w.memory_info().rss for w in workers}
    stop = threading.Event()

    def sample_rss() -> None:
        while not stop.is_set():
            for w in workers:
                peak_rss[w.pid] = max(peak_rss[w.pid], w.memory_info().rss)
            stop.wait(0.25)

    sampler = threading.Thread(target=sample_rss, daemon=True)
    user_before, system_before = cpu_split(workers)
    sampler.start()
    load.stdin.write("GO\n")
    load.stdin.flush()
    out, err = load.communicate(timeout=duration + 120)
    user_after, system_after = cpu_split(workers)
    user_used, system_used = user_after - user_before, system_after - system_before
    cpu_used = user_used + system_used
    stop.set()
    sampler.join()
    result = json.loads(out)
    latencies = sorted(result.pop("latencies"))
    ops = result["ops"]

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies \
            else float("nan")

    return {
        "scenario": name, "ops": ops, "errors": result["errors"],
        "first_error": result["first_error"],
        "throughput_per_s": ops / result["elapsed"],
        "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
        "server_cpu_s": cpu_used,
        # The kernel's share (loopback TCP, one connection per request with sync workers).
        "server_system_cpu_s": system_used,
        "cpu_ms_per_op": cpu_used / ops * 1000 if ops else float("nan"),
        "per_core_per_s": ops / cpu_used if cpu_used else float("nan"),
        "peak_rss_mb_per_worker": max(peak_rss.values()) / 2**20,
    }


def run_jobs(jobs: list[str], invitations: int, legacy_rows: int,
             workdir: Path) -> dict[str, Any]:
    """The batch jobs, in this process, on the benchmark's database (its 1,000,000 people)."""
    from idp import create_app

    app = create_app()  # IDP_CONFIG: the benchmark's configuration
    results: dict[str, Any] = {}
    if "invitations" in jobs:
        from bench.invitations import time_bulk_invitation

        print(f"bench: bulk invitation of {invitations:,} people", flush=True)
        results["invitations"] = time_bulk_invitation(app, invitations)
    if "legacy_import" in jobs:
        from bench.legacy_import import time_import, write_csv

        print(f"bench: legacy import of {legacy_rows:,} rows", flush=True)
        path = workdir / "legacy.csv"
        write_csv(path, legacy_rows)
        results["legacy_import"] = time_import(app, path, legacy_rows)
    return results


def floor_for(name: str, floors: dict[str, float]) -> tuple[str, float] | None:
    if name in ("password_sign_in", "totp_sign_in"):
        return "argon2id verify", 1 / floors["argon2id_verify_s"]
    if name in ("client_credentials", "refresh"):
        return "one RS256 signature", 1 / floors["rs256_sign_s"]
    return None


def markdown(results: dict[str, Any]) -> str:
    floors = results["floors"]
    lines = [
        f"Portal IdP benchmark, {results['date']}: gunicorn {results['workers']} sync workers, "
        f"SQLite, {results['users']:,} users, {results['cpu_count']} cores shared with the load "
        "generator; loopback, no TLS. *Per server core* = operations per second of server CPU "
        "(the workers' own CPU time, so the load generator's is not counted).",
        "",
        "| scenario | ops/s (loopback, no TLS) | per server core/s (loopback, no TLS) "
        "| p50 ms | p95 ms | p99 ms | errors | server CPU ms/op | floor per core/s "
        "| ratio to floor | Keycloak per vCPU/s (with TLS) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["scenarios"]:
        floor = floor_for(r["scenario"], floors)
        floor_text = f"{floor[1]:.0f}/s ({floor[0]})" if floor else "—"
        ratio = f"{r['per_core_per_s'] / floor[1]:.2f}" if floor else "—"
        keycloak = KEYCLOAK_PER_VCPU.get(r["scenario"])
        lines.append(
            f"| {r['scenario']} | {r['throughput_per_s']:.0f} | {r['per_core_per_s']:.0f} "
            f"| {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} "
            f"| {r['cpu_ms_per_op']:.2f} | {floor_text} | {ratio} "
            f"| {keycloak if keycloak else '—'} |"
        )
    peak = max(r["peak_rss_mb_per_worker"] for r in results["scenarios"])
    lines += ["", f"Peak RSS per worker: {peak:.0f} MB. Floors measured in this run: argon2id "
              f"verify {floors['argon2id_verify_s'] * 1000:.1f} ms, RS256 signature "
              f"{floors['rs256_sign_s'] * 1000:.2f} ms, ES256 "
              f"{floors['es256_sign_s'] * 1000:.3f} ms."]
    ratios = sorted(floors[k] / v for k, v in REFERENCE_FLOORS.items())
    if ratios[0] > 1.2:
        low, high = ratios
        scaled = ", ".join(f"{r['scenario']} {r['per_core_per_s'] * low:,.0f}–"
                           f"{r['per_core_per_s'] * high:,.0f}/s" for r in results["scenarios"])
        lines.append(f"This machine was {low:.1f}x (argon2id) to {high:.1f}x (RS256) slower "
                     "than in the reference run of 2026-11-22; per server core at that speed, "
                     f"an estimate: {scaled}.")
    if "sign_in_by_population" in results:
        by = sorted(results["sign_in_by_population"].items(), key=lambda item: int(item[0]))
        parts = [f"{int(count):,} users: {p50:.1f} ms" for count, p50 in by]
        lines.append("Password sign-in p50 by user count: " + ", ".join(parts) + ".")
    jobs = results.get("jobs") or {}
    if jobs:
        lines += ["", "| batch job (in process, on the same database) | amount | seconds "
                  "| per second | target |", "|---|---|---|---|---|"]
    if "invitations" in jobs:
        job = jobs["invitations"]
        lines.append(f"| bulk invitation, until all are queued | {job['people']:,} people "
                     f"| {job['seconds']:.1f} | {job['per_second']:,} | "
                     f"{TARGETS['invitations']} |")
    if "legacy_import" in jobs:
        job = jobs["legacy_import"]
        lines.append(f"| legacy import, first run (all created) | {job['rows']:,} rows "
                     f"| {job['first_seconds']:.1f} | {job['first_rows_per_second']:,} "
                     f"| {TARGETS['legacy_import']} |")
        if "reimport_seconds" in job:
            lines.append(f"| legacy import, same file again (all unchanged) | {job['rows']:,} rows "
                         f"| {job['reimport_seconds']:.1f} | {job['reimport_rows_per_second']:,} "
                         "| — |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--gunicorn", default="",
                        help="more gunicorn options, e.g. '--worker-class gthread --threads 2'")
    parser.add_argument("--jobs", default=",".join(JOBS),
                        help="batch jobs after the HTTP scenarios ('' for none)")
    parser.add_argument("--invitations", type=int, default=10_000)
    parser.add_argument("--legacy-rows", type=int, default=100_000)
    parser.add_argument("--output", default=str(RESULTS / "latest"))
    args = parser.parse_args()
    scenarios = [name for name in args.scenarios.split(",") if name]
    jobs = [name for name in args.jobs.split(",") if name]
    started_at = time.monotonic()

    workdir = Path(tempfile.mkdtemp(prefix="idp-bench-"))
    port = free_port()
    config = write_config(workdir, port)
    small = min(1000, args.users)
    print(f"bench: preparing {small:,} users in {workdir}", flush=True)
    target = prepare_database(config, small,
                              mfa_users=MFA_USERS if "totp_sign_in" in scenarios else 0)
    target.update(url=f"http://127.0.0.1:{port}",
                  users=[{"email": f"person{n}@bench.example", "password": PASSWORD}
                         for n in range(0, small, max(1, small // 50))])
    target_file = workdir / "target.json"
    target_file.write_text(json.dumps(target))
    floors = measure_floors()
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "users": args.users, "workers": args.workers,
        "cpu_count": os.cpu_count(), "python": platform.python_version(), "floors": floors,
        "scenarios": [], "sign_in_by_population": {}, "jobs": {},
    }
    server = start_server(config, port, args.workers, tuple(args.gunicorn.split()))
    try:
        short = max(5.0, args.duration / 2)
        print(f"bench: sign-in latency at {small:,} users", flush=True)
        few = run_scenario("password_sign_in", target_file, server, short, args.concurrency)
        results["sign_in_by_population"][str(small)] = few["p50_ms"]
        if args.users > small:
            print(f"bench: seeding up to {args.users:,} users", flush=True)
            started = time.monotonic()
            database = str(workdir / "idp.sqlite3")
            from idp.config import SecuritySettings  # same hash parameters as the server
            from idp.security.passwords import PasswordHashing

            seed_users(database, args.users, PasswordHashing(SecuritySettings()).hash(PASSWORD),
                       start=small)
            print(f"bench: seeded in {time.monotonic() - started:.0f} s", flush=True)
        for name in scenarios:
            print(f"bench: {name} for {args.duration:.0f} s", flush=True)
            result = run_scenario(name, target_file, server, args.duration, args.concurrency)
            results["scenarios"].append(result)
            if name == "password_sign_in":
                results["sign_in_by_population"][str(args.users)] = result["p50_ms"]
        server.terminate()
        server.wait(timeout=30)
        results["jobs"] = run_jobs(jobs, args.invitations, args.legacy_rows, workdir)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    results["wall_seconds"] = round(time.monotonic() - started_at)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    output.with_suffix(".md").write_text(table)
    print(table)
    print(f"bench: {results['wall_seconds']} s end to end")
    if any(r["errors"] for r in results["scenarios"]):
        print("bench: ERRORS above; the figures are not valid", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
