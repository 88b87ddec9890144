"""Browser fixtures: one Chromium per run, a page per viewport, a live IdP and a live RP.

Mail: a module that overrides `settings_overrides` with `smtp_settings(smtp_server)` makes
the live IdP send through a real SMTP server on 127.0.0.1; `mailbox` then delivers the
outbox and reads the links from the emails, as a person would.

The browser is Debian's Chromium (`/usr/bin/chromium`, or the path in `IDP_BROWSER`);
Playwright's own browser builds are never downloaded. Without it the browser tests are
skipped with one line saying why, unless `IDP_REQUIRE_BROWSER=1` (set by `.ci/run`), which
turns the missing browser into a failure.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import pytest
from flask import Flask
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)

from idp import create_app
from idp.db import db
from idp.notify.worker import deliver_due
from tests.conftest import make_settings
from tests.databases import TemplateDatabase
from tests.factories import PASSWORD, make_client, make_user
from tests.live import serve
from tests.relying_party import create_relying_party
from tests.smtp_server import SmtpServer

DEFAULT_BROWSER = "/usr/bin/chromium"
REQUIRE_BROWSER = "IDP_REQUIRE_BROWSER"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Headless in a container: no sandbox (no user namespaces), no GPU, no shared-memory
# limits, and no calls home (the machine reaches no network beyond package registries).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 10_000  # a local page that takes longer is a failure, not a slow pass


@dataclass(frozen=True)
class Viewport:
    name: str
    width: int
    height: int
    is_mobile: bool = False
    has_touch: bool = False

    def context_options(self) -> dict[str, Any]:
        """Keyword arguments for `Browser.new_context`."""
        return {
            "viewport": {"width": self.width, "height": self.height},
            "is_mobile": self.is_mobile,
            "has_touch": self.has_touch,
        }


DESKTOP = Viewport("desktop", 1280, 800)
PHONE = Viewport("phone", 390, 844, is_mobile=True, has_touch=True)


def find_browser() -> tuple[str | None, str]:
    """(path to Chromium or None, why it is missing): IDP_BROWSER, else Debian's."""
    wanted = os.environ.get("IDP_BROWSER") or DEFAULT_BROWSER
    missing = f"no Chromium at {wanted} (apt-get install chromium, or set IDP_BROWSER)"
    return shutil.which(wanted), missing


def browser_required() -> bool:
    """True where a missing browser must fail the run (CI sets IDP_REQUIRE_BROWSER=1)."""
    return os.environ.get(REQUIRE_BROWSER, "") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/browser/; skip them all at once when Chromium is missing."""
    here = Path(__file__).parent
    ours = [item for item in items if here in item.path.parents]
    executable, missing = find_browser()
    for item in ours:
        item.add_marker(pytest.mark.browser)
        if executable is None and not browser_required():
            # A skip mark (not pytest.skip in the fixture) folds into one line of -ra output.
            item.add_marker(pytest.mark.skip(reason=missing))


# Package scope, not session: between sync calls Playwright leaves its event loop marked as
# running in the main thread, which would break asyncio.run() in any test after this package.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, shared by every browser test of the run."""
    executable, missing = find_browser()
    if executable is None:  # only reached under IDP_REQUIRE_BROWSER=1 (else skipped above)
        pytest.fail(f"{missing}; {REQUIRE_BROWSER}=1 makes this a failure", pytrace=False)
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Exception as exc:  # present but broken is always a failure, never a skip
            first_line = str(exc).strip().splitlines()[0]
            pytest.fail(f"Chromium at {executable} did not start: {first_line}", pytrace=False)
        yield launched
        launched.close()


@pytest.fixture(params=[DESKTOP, PHONE], ids=lambda viewport: viewport.name)
def viewport(request: pytest.FixtureRequest) -> Viewport:
    """Each browser test runs on a desktop and on a phone."""
    return request.param  # type: ignore[no-any-return]


def new_context(browser: Browser, viewport: Viewport, **options: Any) -> BrowserContext:
    """A browser context for `viewport` (`options`: e.g. storage_state); the caller closes it."""
    context = browser.new_context(**viewport.context_options(), **options)
    context.set_default_timeout(TIMEOUT_MS)
    return context


@pytest.fixture
def page(browser: Browser, viewport: Viewport) -> Iterator[Page]:
    """A fresh page in its own browser context (no cookies shared between tests)."""
    context = new_context(browser, viewport)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def page_problems(page: Page) -> list[str]:
    """What went wrong inside `page`: console errors and warnings (CSP violations among
    them) and uncaught JavaScript exceptions. A test asserts it stays empty.

    Chromium's own request for /favicon.ico (neither server has one) is not counted.
    """
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if urlsplit(message.location.get("url", "")).path == "/favicon.ico":
            return
        if message.type in ("error", "warning"):
            problems.append(f"console {message.type}: {message.text} ({message.location})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"pageerror: {error}"))
    return problems


@pytest.fixture
def screenshot(viewport: Viewport) -> Callable[[Page, str], Path | None]:
    """`screenshot(page, "sign-in")` saves docs/screenshots/sign-in-<viewport>.png.

    Only with IDP_SCREENSHOTS=1, so that an ordinary run leaves the work tree clean.
    """

    def take(page: Page, name: str) -> Path | None:
        if os.environ.get("IDP_SCREENSHOTS", "") != "1":
            return None
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}-{viewport.name}.png"
        page.screenshot(path=str(path), full_page=True, animations="disabled", caret="hide")
        return path

    return take


@dataclass
class LiveIdP:
    url: str
    app: Flask


@pytest.fixture
def idp_host_name() -> str:
    """The host name in the live IdP's URL (override: "localhost" for passkeys)."""
    return "127.0.0.1"


@pytest.fixture
def live_idp(
    tmp_path: Path, template_database: TemplateDatabase,
    settings_overrides: dict[str, dict[str, Any]], idp_host_name: str,
) -> Iterator[LiveIdP]:
    """The IdP on a copy of the migrated database, a live server on 127.0.0.1.

    `settings_overrides` (tests/conftest.py; override it in a module) changes settings.
    """
    instance = tmp_path / "instance"
    template_database.copy_to(instance)
    built: dict[str, Flask] = {}
    sections = {name: dict(values) for name, values in settings_overrides.items()}

    def build(url: str) -> Flask:
        server = {**sections.get("server", {}), "issuer": url}
        built["app"] = create_app(make_settings(instance, **{**sections, "server": server}))
        return built["app"]

    with serve(build, idp_host_name) as url:
        yield LiveIdP(url, built["app"])
    with built["app"].app_context():
        db.session.remove()
        db.engine.dispose()


@dataclass
class LiveRP:
    url: str
    record: dict[str, Any]
    client_id: str = ""


@pytest.fixture
def rp(live_idp: LiveIdP) -> Iterator[LiveRP]:
    """A registered first-party portal (authlib's Flask client), a live server too."""
    records: list[dict[str, Any]] = []
    client_ids: list[str] = []

    def build(url: str) -> Flask:
        with live_idp.app.app_context():
            client = make_client(
                name="Members Only",
                redirect_uris=[f"{url}/callback"],
                post_logout_redirect_uris=[f"{url}/signed-out"],
            )
            client_id, client_secret = client.client.client_id, client.client_secret
            assert client_secret is not None  # a confidential client, like most portals
        app, record = create_relying_party(url, live_idp.url, client_id, client_secret)
        records.append(record)
        client_ids.append(client_id)
        return app

    with serve(build) as url:
        yield LiveRP(url, records[0], client_ids[0])


@dataclass(frozen=True)
class Person:
    email: str
    password: str
    sub: str
    name: str


@pytest.fixture
def person(live_idp: LiveIdP) -> Person:
    """A user with a verified email, made inside the IdP's app context."""
    with live_idp.app.app_context():
        user = make_user(name="Ada Lovelace")
        return Person(user.email, PASSWORD, user.sub, user.name or "")


# -- mail through a real SMTP server ----------------------------------------------------------

LINK = re.compile(r"https?://\S+")


@dataclass
class Mailbox:
    """The IdP's outbox, delivered on demand to the SMTP server, read like a mail client."""

    smtp: SmtpServer
    idp: LiveIdP

    def messages_to(self, address: str) -> list[EmailMessage]:
        """Deliver what is due (the worker's own function), then the emails to `address`."""
        with self.idp.app.app_context():
            deliver_due()
        return [message for message in self.smtp.messages if message["To"] == address]

    def link_to(self, address: str) -> str:
        """The one link of the newest email to `address`."""
        messages = self.messages_to(address)
        assert messages, f"no email to {address}"
        text = self.smtp.text_of(messages[-1])
        links = LINK.findall(text)
        assert len(links) == 1, text
        return links[0]


@pytest.fixture
def mailbox(smtp_server: SmtpServer, live_idp: LiveIdP) -> Mailbox:
    mail = live_idp.app.extensions["idp"].settings.mail
    assert (mail.backend, mail.smtp_port) == ("smtp", smtp_server.port), (
        "override settings_overrides with smtp_settings(smtp_server) to use the mailbox"
    )
    return Mailbox(smtp_server, live_idp)


# -- steps shared by the browser tests ------------------------------------------------------


def open_sign_in(page: Page, rp: LiveRP, idp: LiveIdP) -> None:
    """Start at the portal's /login; the browser is sent to the IdP's sign-in page."""
    page.goto(f"{rp.url}/login")
    expect(page).to_have_url(re.compile(rf"^{re.escape(idp.url)}/login/"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def claims_after(page: Page, rp: LiveRP, submit: Callable[[], Any]) -> dict[str, Any]:
    """Run `submit()` and return the JSON the portal shows once it has the ID token."""
    with page.expect_response(
        lambda response: response.url.startswith(f"{rp.url}/callback")
    ) as callback:
        submit()
    response = callback.value
    assert response.status == 200, response.text()
    expect(page).to_have_url(re.compile(rf"^{re.escape(rp.url)}/callback"))
    return response.json()  # type: ignore[no-any-return]


# -- Node (clients/node-rp: openid-client, and axe-core for the accessibility checks) -------

NODE_RP = Path(__file__).resolve().parents[2] / "clients" / "node-rp"
SERIOUS_IMPACTS = ("serious", "critical")


@pytest.fixture(scope="session")
def node_packages() -> Path:
    """clients/node-rp/node_modules, installed from the committed lockfile with `npm ci`.

    Installed once per lockfile (a stamp in node_modules records which). Without node or
    npm, or when npm cannot install, the tests that need it are skipped with one line,
    unless IDP_REQUIRE_BROWSER=1, which makes that a failure.
    """
    node, npm = shutil.which("node"), shutil.which("npm")

    def unavailable(why: str) -> NoReturn:
        if browser_required():
            pytest.fail(f"{why}; {REQUIRE_BROWSER}=1 makes this a failure", pytrace=False)
        pytest.skip(why)

    if node is None or npm is None:
        unavailable("no node/npm on PATH (apt-get install nodejs npm)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True,
                             check=False).stdout.strip()
    if not re.fullmatch(r"v(\d+)\..*", version) or int(version[1:].split(".")[0]) < 20:
        unavailable(f"node {version or '?'} is too old for openid-client 6 (20 or newer)")
    modules = NODE_RP / "node_modules"
    stamp = modules / ".installed-from-lockfile"
    lockfile = hashlib.sha256((NODE_RP / "package-lock.json").read_bytes()).hexdigest()
    if not (stamp.is_file() and stamp.read_text() == lockfile):
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_RP, capture_output=True, text=True, timeout=300, check=False,
        )
        if result.returncode != 0:
            last = (result.stderr.strip() or result.stdout.strip() or "?").splitlines()[-1]
            unavailable(f"npm ci in clients/node-rp failed: {last}")
        stamp.write_text(lockfile)
    return modules


@pytest.fixture(scope="session")
def axe_source(node_packages: Path) -> str:
    """axe-core's browser build, from node_modules (never a CDN)."""
    return (node_packages / "axe-core" / "axe.min.js").read_text(encoding="utf-8")


class Auditor:
    """`audit(page)`: axe-core over the page as it is now; serious or critical violations fail.

    The script is evaluated through the DevTools protocol, which the pages' strict CSP
    (`script-src 'self'`) does not govern; nothing is added to the page's own markup.
    IDP_AXE_DEBUG=1 prints every violation, whatever its impact (run pytest with -s).
    """

    def __init__(self, source: str | None) -> None:
        self.source = source
        self.audited: list[str] = []  # "<title> <url>" of every page checked

    def __call__(self, page: Page) -> None:
        if self.source is None:
            return  # axe-core unavailable: test_accessibility_* report the skip
        if not page.evaluate("() => typeof window.axe === 'object'"):
            page.evaluate(self.source)
        violations = page.evaluate(
            """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
                 .map(v => ({id: v.id, impact: v.impact, help: v.help,
                             nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}))"""
        )
        self.audited.append(f"{page.title()} {page.url}")
        if os.environ.get("IDP_AXE_DEBUG"):
            print("AXE", page.title(), [(v["impact"], v["id"], v["nodes"]) for v in violations])
        serious = [v for v in violations if v["impact"] in SERIOUS_IMPACTS]
        assert not serious, f"axe-core on {page.url}:\n" + "\n".join(
            f"  {v['impact']}: {v['id']}: {v['help']} at {v['nodes']}" for v in serious
        )


@pytest.fixture
def audit(request: pytest.FixtureRequest) -> Auditor:
    """The accessibility check of the hosted pages a test reaches (see `Auditor`)."""
    try:
        source: str | None = request.getfixturevalue("axe_source")
    except pytest.skip.Exception:
        source = None  # reported as a skip by the tests that ask for `axe_source` directly
    return Auditor(source)
