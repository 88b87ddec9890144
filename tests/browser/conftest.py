"""Browser fixtures: one Chromium per run, a page per viewport, a live IdP and a live RP.

The browser is Debian's Chromium (`/usr/bin/chromium`, or the path in `IDP_BROWSER`);
Playwright's own browser builds are never downloaded. Without it the browser tests are
skipped with one line saying why, unless `IDP_REQUIRE_BROWSER=1` (set by `.ci/run`), which
turns the missing browser into a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, sync_playwright

from idp import create_app
from idp.db import db
from tests.conftest import make_settings
from tests.factories import PASSWORD, make_client, make_user
from tests.live import serve
from tests.relying_party import create_relying_party

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


@pytest.fixture
def page(browser: Browser, viewport: Viewport) -> Iterator[Page]:
    """A fresh page in its own browser context (no cookies shared between tests)."""
    context = browser.new_context(**viewport.context_options())
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


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
def live_idp(tmp_path: Path, template_database: Path) -> Iterator[LiveIdP]:
    """The IdP on a copy of the migrated database, a live server on 127.0.0.1."""
    instance = tmp_path / "instance"
    instance.mkdir()
    shutil.copy(template_database, instance / "idp.sqlite3")
    built: dict[str, Flask] = {}

    def build(url: str) -> Flask:
        built["app"] = create_app(make_settings(instance, server={"issuer": url}))
        return built["app"]

    with serve(build) as url:
        yield LiveIdP(url, built["app"])
    with built["app"].app_context():
        db.session.remove()
        db.engine.dispose()


@dataclass
class LiveRP:
    url: str
    record: dict[str, Any]


@pytest.fixture
def rp(live_idp: LiveIdP) -> Iterator[LiveRP]:
    """A registered first-party portal (authlib's Flask client), a live server too."""
    records: list[dict[str, Any]] = []

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
        return app

    with serve(build) as url:
        yield LiveRP(url, records[0])


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
