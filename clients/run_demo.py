"""`make run`: the IdP on :5000 and the three demo portals on :5001-5003; Ctrl-C stops all.

1. `idp init --demo` (idempotent): the database, keys, the demo portals, clients, people.
2. `idp serve` as a child process, the three portals in threads of this process.
3. Once every one answers: the URLs and the demo accounts.

Ctrl-C in the terminal interrupts the whole foreground process group (this process and
`idp serve`); SIGTERM to this process works the same. Either way every server stops and
the child is waited for: nothing is left listening. The IdP is reached as a process only
(`python -m idp`): the portals import nothing from it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from werkzeug.serving import BaseWSGIServer, make_server

from clients import members_portal, ministry_portal, mls_portal
from clients.common import PortalSettings

PORTALS = (
    (mls_portal, "saved searches behind sign-in; MFA required; legacy usernames move to email"),
    (members_portal, "an association; invitations and reset emails by staff; MFA optional"),
    (ministry_portal, "a church; New user? Create an account (directory match); "
                      "keep me signed in"),
)
START_TIMEOUT = 60.0


class Stop(Exception):
    """SIGTERM: stop like Ctrl-C."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clients.run_demo", description=__doc__)
    parser.add_argument("--idp-port", type=int, default=5000)
    parser.add_argument("--portal-ports", default="5001,5002,5003",
                        help="MLS, Members, Ministry (the demo clients are registered for "
                             "5001-5003)")
    parser.add_argument("--no-init", action="store_true", help="skip `idp init --demo`")
    args = parser.parse_args(argv)
    ports = [int(port) for port in args.portal_ports.split(",")]
    if len(ports) != len(PORTALS):
        parser.error(f"--portal-ports: {len(PORTALS)} ports, comma-separated")
    issuer = f"http://127.0.0.1:{args.idp_port}"
    env = {**os.environ, "IDP_SERVER__ISSUER": issuer}
    idp = [sys.executable, "-m", "idp"]

    accounts: list[str] = []
    if not args.no_init:
        init = subprocess.run([*idp, "init", "--demo"], env=env, capture_output=True, text=True,
                              check=False)
        if init.returncode != 0:
            sys.stderr.write(init.stderr or init.stdout)
            return init.returncode
        accounts = [line.removeprefix("idp: demo account ")
                    for line in init.stdout.splitlines() if line.startswith("idp: demo account")]

    # Started in the background of a script, SIGINT arrives ignored: take Ctrl-C back (the
    # child then inherits the default, not the "ignore").
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_stop)
    servers: list[BaseWSGIServer] = []
    child: subprocess.Popen[bytes] | None = None
    try:
        child = subprocess.Popen([*idp, "serve", "--host", "127.0.0.1",
                                  "--port", str(args.idp_port)], env=env)
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for (module, _), url in zip(PORTALS, urls, strict=True):
            neighbours = tuple((other.BRAND.name, other_url)
                               for (other, _), other_url in zip(PORTALS, urls, strict=True)
                               if other is not module)
            settings = PortalSettings(url, issuer, module.CLIENT_ID, module.CLIENT_SECRET,
                                      neighbours=neighbours)
            servers.append(_serve(module.create_app(settings), int(url.rsplit(":", 1)[1])))
        if not _wait_until_up(child, args.idp_port):
            print("run_demo: the IdP did not start (see above)", file=sys.stderr)
            return 1
        _print_banner(issuer, urls, accounts)
        child.wait()
        return child.returncode or 0
    except (KeyboardInterrupt, Stop):
        return 0
    except OSError as exc:  # a portal port in use
        print(f"run_demo: {exc}", file=sys.stderr)
        return 1
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        if child is not None:
            _stop(child)
        print("run_demo: stopped the IdP and the demo portals", flush=True)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop()


def _serve(app: object, port: int) -> BaseWSGIServer:
    server = make_server("127.0.0.1", port, app, threaded=True)  # type: ignore[arg-type]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                     daemon=True).start()
    return server


def _wait_until_up(child: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if child.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _stop(child: subprocess.Popen[bytes]) -> None:
    """The child got the terminal's SIGINT too; SIGTERM it if it is still there."""
    if child.poll() is None:
        child.terminate()
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _print_banner(issuer: str, urls: list[str], accounts: list[str]) -> None:
    lines = ["", "Portal IdP demo (Ctrl-C stops everything)",
             f"  IdP (hosted sign-in)   {issuer}",
             f"  Development mailbox    {issuer}/dev/mailbox  (email and text messages)"]
    for (module, what), url in zip(PORTALS, urls, strict=True):
        lines.append(f"  {module.BRAND.name:<22} {url}  {what}")
    if accounts:
        lines.append("Demo accounts:")
        lines.extend(f"  {account}" for account in accounts)
    lines.append("")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
