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
SCENARIOS = ["password_sign_in", "client_credentials", "refresh", "userinfo",
             "introspection", "discovery"]


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


def prepare_database(config: Path, users: int) -> dict[str, Any]:
    """Migrate, create the bench clients and seed `users` people; returns the target."""
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
        target = {
            "client_id": rp.client.client_id, "client_secret": rp.client_secret,
            "redirect_uri": REDIRECT_URI, "service_id": service.client.client_id,
            "service_secret": service.client_secret,
        }
        db.engine.dispose()
    seed_users(database, users, password_hash)
    return target


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


def start_server(config: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    # WARNING: no JSON line per request on the terminal (production logs them at INFO).
    env = {**os.environ, "IDP_CONFIG": str(config), "IDP_SERVER__LOG_LEVEL": "WARNING"}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "-w", str(workers), "-b",
         f"127.0.0.1:{port}", "--log-level", "warning", "wsgi:app"],
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


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        times = process.cpu_times()
        total += times.user + times.system
    return total


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
    cpu_before = cpu_seconds(workers)
    sampler.start()
    load.stdin.write("GO\n")
    load.stdin.flush()
    out, err = load.communicate(timeout=duration + 120)
    cpu_used = cpu_seconds(workers) - cpu_before
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
        "cpu_ms_per_op": cpu_used / ops * 1000 if ops else float("nan"),
        "per_core_per_s": ops / cpu_used if cpu_used else float("nan"),
        "peak_rss_mb_per_worker": max(peak_rss.values()) / 2**20,
    }


def floor_for(name: str, floors: dict[str, float]) -> tuple[str, float] | None:
    if name == "password_sign_in":
        return "argon2id verify", 1 / floors["argon2id_verify_s"]
    if name in ("client_credentials", "refresh"):
        return "one RS256 signature", 1 / floors["rs256_sign_s"]
    return None


def markdown(results: dict[str, Any]) -> str:
    floors = results["floors"]
    lines = [
        f"Portal IdP benchmark, {results['date']}: gunicorn {results['workers']} sync workers, "
        f"SQLite, {results['users']:,} users, {results['cpu_count']} cores shared with the load "
        "generator; loopback, no TLS. *Per core* = operations per second of server CPU.",
        "",
        "| scenario | ops/s | per core | p50 ms | p95 ms | p99 ms | errors | CPU ms/op "
        "| floor/core | ratio to floor | Keycloak per vCPU (with TLS) |",
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
    if "sign_in_by_population" in results:
        by = sorted(results["sign_in_by_population"].items(), key=lambda item: int(item[0]))
        parts = [f"{int(count):,} users: {p50:.1f} ms" for count, p50 in by]
        lines.append("Password sign-in p50 by user count: " + ", ".join(parts) + ".")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--output", default=str(RESULTS / "latest"))
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="idp-bench-"))
    port = free_port()
    config = write_config(workdir, port)
    small = min(1000, args.users)
    print(f"bench: preparing {small:,} users in {workdir}", flush=True)
    target = prepare_database(config, small)
    target.update(url=f"http://127.0.0.1:{port}",
                  users=[{"email": f"person{n}@bench.example", "password": PASSWORD}
                         for n in range(0, small, max(1, small // 50))])
    target_file = workdir / "target.json"
    target_file.write_text(json.dumps(target))
    floors = measure_floors()
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "users": args.users, "workers": args.workers,
        "cpu_count": os.cpu_count(), "python": platform.python_version(), "floors": floors,
        "scenarios": [], "sign_in_by_population": {},
    }
    server = start_server(config, port, args.workers)
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
        for name in args.scenarios.split(","):
            print(f"bench: {name} for {args.duration:.0f} s", flush=True)
            result = run_scenario(name, target_file, server, args.duration, args.concurrency)
            results["scenarios"].append(result)
            if name == "password_sign_in":
                results["sign_in_by_population"][str(args.users)] = result["p50_ms"]
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    output.with_suffix(".md").write_text(table)
    print(table)
    if any(r["errors"] for r in results["scenarios"]):
        print("bench: ERRORS above; the figures are not valid", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
