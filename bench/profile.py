"""Profile one bench scenario in-process with pyinstrument, server side only.

    .venv/bin/python -m bench.profile userinfo [--requests 2000] [--users 1000]
    .venv/bin/python -m bench.profile password_sign_in --requests 100 --interval 0.0005
    .venv/bin/python -m bench.profile userinfo --attach [--duration 10]

Builds the IdP the way `make bench` does (production settings, a fresh SQLite database in a
temporary folder, the same bench clients and people), drives the scenario through the
Flask test client, and profiles only the time spent inside the WSGI application: the
driver's own work is left out, as the load generator's is in `make bench`. Writes
bench/results/profiles/<scenario>.txt (with --html also pyinstrument's page, tens of MB):
per operation the server's CPU milliseconds (a run without the profiler; CPU time, not wall
time, so other work on a shared machine does not count), the SQL statements executed and
those of one operation in order, then the call tree and self time by function.
Scenarios: those of bench/load.py (password_sign_in, totp_sign_in, client_credentials,
refresh, userinfo, introspection, discovery).

With --attach, the whole server instead: the IdP under gunicorn as in `make bench`, the
scenario driven over loopback by bench/load.py, and py-spy (`pip install py-spy`) sampling
the workers, gunicorn's own HTTP handling included. Writes <scenario>-gunicorn.svg (a flame
graph) and <scenario>-gunicorn.txt (self and total time by function, and by package).
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pyinstrument import Profiler
from pyinstrument.renderers import ConsoleRenderer, HTMLRenderer
from pyinstrument.session import Session
from sqlalchemy import event

from bench.load import ACTION, CSRF, METHOD, basic, pkce
from bench.run import PASSWORD, RESULTS, prepare_database, write_config

PROFILES = RESULTS / "profiles"
SCENARIOS = ["password_sign_in", "totp_sign_in", "client_credentials", "refresh", "userinfo",
             "introspection", "discovery"]


class ServerSide:
    """WSGI middleware: the profiler and the SQL counter run only inside the application."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.inner = app.wsgi_app
        self.interval: float | None = None  # sampling interval while profiling, else None
        self.sessions: list[Session] = []
        self.seconds = 0.0
        self.requests = 0
        self.statements = 0
        self.by_endpoint: Counter[str] = Counter()
        self.counting = False
        self.log: list[str] | None = None  # when a list: each request and its statements

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        self.counting = True
        if self.log is not None:
            self.log.append(f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}")
        # One profiler a request, merged at the end: pyinstrument's own restart merges
        # sessions on every stop, which grows quadratically over thousands of requests.
        profiler = None if self.interval is None else Profiler(self.interval, "disabled")
        if profiler is not None:
            profiler.start()
        # CPU time of this thread: fair on a shared machine, where wall time is not.
        started = time.thread_time()
        try:
            # Read the body inside: Flask's is ready, but a streamed one would run here.
            return list(self.inner(environ, start_response))
        finally:
            self.seconds += time.thread_time() - started
            if profiler is not None:
                self.sessions.append(profiler.stop())
            self.counting = False
            self.requests += 1
            path = "/" + environ["PATH_INFO"].split("/")[1]  # /login/<id> counts as /login
            self.by_endpoint[f"{environ['REQUEST_METHOD']} {path}"] += 1

    def count_statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if self.counting:
            self.statements += 1
            if self.log is not None:
                self.log.append("    " + " ".join(statement.split())[:160])

    def reset(self, interval: float | None = None) -> None:
        self.interval, self.sessions = interval, []
        self.seconds, self.requests, self.statements = 0.0, 0, 0
        self.by_endpoint.clear()

    def merged(self) -> Session:
        """Every request's samples in one session (aggregate views only, not a timeline)."""
        first = self.sessions[0]
        return Session(
            frame_records=[r for s in self.sessions for r in s.frame_records],
            start_time=first.start_time, min_interval=first.min_interval,
            max_interval=max(s.max_interval for s in self.sessions),
            duration=sum(s.duration for s in self.sessions),
            sample_count=sum(s.sample_count for s in self.sessions),
            start_call_stack=first.start_call_stack,
            target_description="Portal IdP, inside the WSGI application",
            cpu_time=sum(s.cpu_time for s in self.sessions), sys_path=first.sys_path,
            sys_prefixes=first.sys_prefixes)


class Driver:
    """One scenario through the Flask test client, like bench/load.py does over HTTP."""

    def __init__(self, app: Any, target: dict[str, Any]) -> None:
        self.app, self.t = app, target
        self.http = app.test_client()
        self.turn = 0
        self.token: dict[str, Any] = {}

    def sign_in(self, with_totp: bool = False) -> dict[str, Any]:
        """authorize -> page -> POST -> (TOTP page -> POST) -> code -> token -> userinfo, a
        new browser; the last form answers with the redirect to the client."""
        t = self.t
        users = t["mfa_users"] if with_totp else t["users"]
        user = users[self.turn % len(users)]
        self.turn += 1
        client_id = t["mfa_client_id"] if with_totp else t["client_id"]
        secret = t["mfa_client_secret"] if with_totp else t["client_secret"]
        browser = self.app.test_client()
        verifier, challenge = pkce()
        response = browser.get("/authorize", query_string={
            "response_type": "code", "client_id": client_id, "redirect_uri": t["redirect_uri"],
            "scope": "openid email profile", "state": secrets.token_urlsafe(8),
            "nonce": secrets.token_urlsafe(8), "code_challenge": challenge,
            "code_challenge_method": "S256"})
        page = _expect(browser.get(response.location), 200, "sign-in page").get_data(True)
        response = _expect(browser.post(_match(ACTION, page), data={
            "csrf_token": _match(CSRF, page), "step": "password", "email": user["email"],
            "password": user["password"]}), 303, "password POST")
        if with_totp:
            import pyotp

            response = browser.get(response.location)
            page = _expect(response, 200, "TOTP page").get_data(True)
            response = _expect(browser.post(response.request.path, data={
                "csrf_token": _match(CSRF, page), "step": "mfa_challenge",
                "method": _match(METHOD, page), "code": pyotp.TOTP(user["totp_secret"]).now(),
            }), 303, "TOTP POST")
        assert response.location.startswith(t["redirect_uri"] + "?"), response.location
        code = parse_qs(urlsplit(response.location).query)["code"][0]
        token = _expect(self.http.post("/token", headers=basic(client_id, secret), data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": t["redirect_uri"],
            "code_verifier": verifier}), 200, "token").get_json()
        _expect(self.http.get("/userinfo", headers={
            "Authorization": f"Bearer {token['access_token']}"}), 200, "userinfo")
        return token  # type: ignore[no-any-return]

    def prepare(self, scenario: str) -> None:
        if scenario in ("refresh", "userinfo", "introspection"):
            self.token = self.sign_in()

    def once(self, scenario: str) -> None:
        t = self.t
        if scenario == "password_sign_in":
            self.sign_in()
        elif scenario == "totp_sign_in":
            self.sign_in(with_totp=True)
        elif scenario == "client_credentials":
            _expect(self.http.post("/token", headers=basic(t["service_id"], t["service_secret"]),
                                   data={"grant_type": "client_credentials"}), 200, "cc")
        elif scenario == "refresh":
            self.token = _expect(self.http.post(
                "/token", headers=basic(t["client_id"], t["client_secret"]),
                data={"grant_type": "refresh_token",
                      "refresh_token": self.token["refresh_token"]}), 200, "refresh").get_json()
        elif scenario == "userinfo":
            _expect(self.http.get("/userinfo", headers={
                "Authorization": f"Bearer {self.token['access_token']}"}), 200, "userinfo")
        elif scenario == "introspection":
            body = _expect(self.http.post(
                "/introspect", headers=basic(t["client_id"], t["client_secret"]),
                data={"token": self.token["access_token"]}), 200, "introspection").get_json()
            assert body["active"], body
        elif scenario == "discovery":
            _expect(self.http.get("/.well-known/openid-configuration"), 200, "discovery")
            _expect(self.http.get("/jwks"), 200, "jwks")
        else:
            raise ValueError(scenario)


def _expect(response: Any, status: int, what: str) -> Any:
    if response.status_code != status:
        raise RuntimeError(f"{what}: HTTP {response.status_code} {response.get_data(True)[:300]}")
    return response


def _match(pattern: Any, text: str) -> str:
    found = pattern.search(text)
    if found is None:
        raise RuntimeError(f"no {pattern.pattern!r} in the page")
    return str(found.group(1))


def build(users: int, mfa_users: int, workdir: Path) -> tuple[Any, dict[str, Any]]:
    """The IdP app on a fresh database, and the bench target (clients, people)."""
    config = write_config(workdir, 5000)
    target = prepare_database(config, users, mfa_users=mfa_users)
    target["users"] = [{"email": f"person{n}@bench.example", "password": PASSWORD}
                       for n in range(0, users, max(1, users // 50))]
    from idp import create_app

    app = create_app()
    return app, target


def reference_ms() -> float:
    """CPU ms of a fixed pure-Python workload: the speed of this machine right now.

    On a shared machine the same code costs more CPU time when other processes thrash the
    caches; dividing by this makes runs at different moments comparable.
    """
    samples = []
    for _ in range(7):
        started = time.thread_time()
        table: dict[int, int] = {}
        for n in range(20_000):
            table[n % 97] = table.get(n % 97, 0) + len(str(n))
        samples.append(time.thread_time() - started)
    return sorted(samples)[3] * 1000


def measure(app: Any, target: dict[str, Any], scenario: str, requests: int,
            interval: float | None) -> dict[str, Any]:
    """Run `scenario` `requests` times unprofiled, then again under the profiler."""
    from idp.db import db

    side = app.wsgi_app
    if not isinstance(side, ServerSide):
        side = app.wsgi_app = ServerSide(app)
        with app.app_context():
            event.listen(db.engine, "before_cursor_execute", side.count_statement)
    driver = Driver(app, target)
    driver.prepare(scenario)
    for _ in range(min(20, requests)):  # warm-up: imports, template compilation, caches
        driver.once(scenario)
    side.reset()
    side.log = []  # the statements of one operation, for the report
    driver.once(scenario)
    statements, side.log = side.log, None
    side.reset()
    reference = reference_ms()
    for _ in range(requests):
        driver.once(scenario)
    reference = (reference + reference_ms()) / 2
    per_operation = side.seconds / requests * 1000
    plain = {"operations": requests, "http_requests": side.requests,
             "server_cpu_ms_per_operation": round(per_operation, 3),
             "reference_workload_cpu_ms": round(reference, 3),
             "per_operation_in_reference_units": round(per_operation / reference, 3),
             "sql_statements_per_operation": round(side.statements / requests, 2),
             "requests": dict(side.by_endpoint), "one_operation": statements}
    if interval is None:
        return plain
    side.reset(interval)
    for _ in range(requests):
        driver.once(scenario)
    plain["profiled_cpu_ms_per_operation"] = round(side.seconds / requests * 1000, 3)
    plain["session"] = side.merged()
    side.reset()
    return plain


def write_reports(scenario: str, result: dict[str, Any], output: Path,
                  html: bool = False) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    header = json.dumps({k: v for k, v in result.items() if k != "session"}, indent=2)
    if "session" not in result:  # --measure-only
        (output / f"{scenario}.json").write_text(header + "\n")
        return [output / f"{scenario}.json"]
    session: Session = result["session"]
    written = []
    if html:  # every sample is embedded: tens of MB, so only when asked for
        page = output / f"{scenario}.html"
        page.write_text(HTMLRenderer().render(session))
        written.append(page)
    text = output / f"{scenario}.txt"
    tree = ConsoleRenderer(unicode=True).render(session)
    # Where the time goes by function, whoever called it (the top 60 lines).
    flat = ConsoleRenderer(unicode=True, flat=True).render(session).splitlines()[:70]
    text.write_text(f"{header}\n\n{tree}\n\nSelf time by function:\n" + "\n".join(flat) + "\n")
    return [*written, text]


def attach(scenario: str, duration: float, users: int, output: Path) -> list[Path]:
    """py-spy on the gunicorn workers while bench/load.py drives `scenario`."""
    from bench.run import free_port, run_scenario, start_server

    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        raise SystemExit("--attach needs py-spy: .venv/bin/pip install py-spy")
    output.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="idp-profile-"))
    port = free_port()
    config = write_config(workdir, port)
    target = prepare_database(config, users, mfa_users=400 if scenario == "totp_sign_in" else 0)
    target.update(url=f"http://127.0.0.1:{port}",
                  users=[{"email": f"person{n}@bench.example", "password": PASSWORD}
                         for n in range(0, users, max(1, users // 50))])
    target_file = workdir / "target.json"
    target_file.write_text(json.dumps(target))
    server = start_server(config, port, 2)
    raw = workdir / "stacks.txt"
    svg = output / f"{scenario}-gunicorn.svg"
    try:
        recorders = [subprocess.Popen(
            [str(spy), "record", "--pid", str(server.pid), "--subprocesses", "--rate", "250",
             "--gil", "--nonblocking", "--duration", str(int(duration) + 3), "--format", fmt,
             "--output", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for fmt, path in (("raw", raw), ("flamegraph", svg))]
        time.sleep(1.0)
        result = run_scenario(scenario, target_file, server, duration, 4)
        for recorder in recorders:
            recorder.wait(timeout=60)
    finally:
        server.terminate()
        server.wait(timeout=30)
    text = output / f"{scenario}-gunicorn.txt"
    summary = {k: result[k] for k in ("ops", "errors", "throughput_per_s", "per_core_per_s",
                                      "cpu_ms_per_op", "p50_ms", "p99_ms")}
    text.write_text(json.dumps(summary, indent=2) + "\n\n" + summarise_stacks(raw))
    shutil.rmtree(workdir, ignore_errors=True)
    return [svg, text]


def summarise_stacks(raw: Path, top: int = 45) -> str:
    """Self and total sample shares by function, and self time by package, from py-spy raw."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    package: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if "(" in f]
        if not frames:
            continue
        samples += count
        names = [f.rsplit(":", 1)[0] + ")" if ":" in f else f for f in frames]
        own[names[-1]] += count
        for name in set(names):
            total[name] += count
        where = frames[-1].split("(", 1)[1]
        package[where.split("/", 1)[0].split(".py")[0] if "/" in where
                else where.split(".py")[0]] += count

    def table(counts: Counter[str]) -> str:
        return "\n".join(f"{100 * n / samples:6.1f}%  {name}"
                         for name, n in counts.most_common(top))

    return (f"{samples} samples of the gunicorn workers holding the GIL (idle time left out)\n\n"
            f"Self time by package (the innermost Python frame's):\n{table(package)}\n\n"
            f"Self time by function:\n{table(own)}\n\n"
            f"Total time (the function and what it calls):\n{table(total)}\n")


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="+", choices=SCENARIOS)
    parser.add_argument("--requests", type=int, default=1000,
                        help="operations to run (a sign-in is six HTTP requests)")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=0.0002, help="sampling seconds")
    parser.add_argument("--output", default=str(PROFILES))
    parser.add_argument("--html", action="store_true",
                        help="also write pyinstrument's interactive page (large)")
    parser.add_argument("--measure-only", action="store_true",
                        help="CPU time and SQL statements only, no profile (for A/B runs)")
    parser.add_argument("--attach", action="store_true",
                        help="py-spy on gunicorn workers under bench/load.py instead")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds, with --attach")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.attach:
        for scenario in args.scenarios:
            paths = attach(scenario, args.duration, args.users, Path(args.output))
            print(f"{scenario}: {', '.join(str(p) for p in paths)}", flush=True)
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="idp-profile-"))
    try:
        mfa = 400 if "totp_sign_in" in args.scenarios else 0
        app, target = build(args.users, mfa, workdir)
        for scenario in args.scenarios:
            result = measure(app, target, scenario, args.requests,
                             None if args.measure_only else args.interval)
            paths = write_reports(scenario, result, Path(args.output), args.html)
            print(f"{scenario}: {result['server_cpu_ms_per_operation']} CPU ms/op in the app "
                  f"({result['per_operation_in_reference_units']} reference units), "
                  f"{result['sql_statements_per_operation']} SQL statements/op, "
                  f"{result['http_requests'] // max(1, args.requests)} HTTP requests/op "
                  f"-> {', '.join(str(p) for p in paths)}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
