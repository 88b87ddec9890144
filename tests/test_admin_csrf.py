"""CSRF on every console form, found by crawling the console as an administrator.

Not a list of forms: the crawl starts at /admin/, follows every link inside the console,
submits every search (GET) form (once as it is, once with the person made here typed into
its text fields), and collects every form that POSTs. Each one is then sent without its
csrf_token and with the token of another signed-in session: both must answer 400 and
change nothing in the database. New console pages are covered as soon as a link leads
to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
from sqlalchemy import select

from idp.clock import utcnow
from idp.db import db
from idp.models import AuditEvent, Contact
from idp.models.outbox import FAILED
from idp.notify.outbox import queue_email
from idp.portals import create_portal
from tests.admin_fixtures import console_sign_in, make_staff
from tests.factories import make_client, make_mfa_method, make_user
from tests.legacy import import_rows, legacy_row

MAX_PAGES = 400
VARIANTS_PER_PATH = 4  # query-string variants of one path (pages, filters) worth a visit
SKIP_PATHS = ("/admin/sign-in", "/admin/callback", "/admin/signed-out", "/admin/api/")
# Tables a rejected POST must leave alone; the ones left out change on every request
# (the session's last activity) or only during sign-in.
VOLATILE_TABLES = {"idp_sessions", "session_clients", "login_transactions",
                   "throttle_counters"}


@dataclass
class PageForm:
    page: str
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    text_fields: list[str] = field(default_factory=list)


class _PageParser(HTMLParser):
    """Links and forms (with inputs, selects, textareas and formaction buttons)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.page = page
        self.links: list[str] = []
        self.forms: list[PageForm] = []
        self._form: PageForm | None = None
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and a.get("href"):
            self.links.append(urljoin(self.page, a["href"]))
        elif tag == "form":
            self._form = PageForm(self.page, urljoin(self.page, a.get("action", "")),
                                  a.get("method", "get").lower())
            self.forms.append(self._form)
        elif self._form is None or not a.get("name") and tag != "button":
            return
        elif tag == "input":
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            if kind in ("submit", "button", "image", "file"):
                return
            self._form.fields[a["name"]] = a.get("value", "")
            if kind in ("text", "search", "email"):
                self._form.text_fields.append(a["name"])
        elif tag == "select":
            self._select = a["name"]
            self._form.fields.setdefault(a["name"], "")
        elif tag == "option" and self._select is not None:
            if "selected" in a or self._form.fields[self._select] == "":
                self._form.fields[self._select] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = a["name"]
            self._form.fields[a["name"]] = ""
        elif tag == "button":
            if a.get("name"):
                self._form.fields.setdefault(a["name"], a.get("value", ""))
            if a.get("formaction"):
                # A button posting elsewhere is a form of its own.
                self.forms.append(PageForm(
                    self.page, urljoin(self.page, a["formaction"]),
                    a.get("formmethod", self._form.method).lower(), dict(self._form.fields)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._form is not None and self._textarea is not None:
            self._form.fields[self._textarea] += data


def _inside_console(url: str) -> bool:
    parts = urlsplit(url)
    return (parts.netloc in ("", "localhost") and parts.path.startswith("/admin")
            and not parts.path.startswith(SKIP_PATHS))


def _local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@dataclass
class Crawl:
    visited: dict[str, int] = field(default_factory=dict)  # url -> status
    post_forms: dict[tuple[str, tuple[str, ...]], PageForm] = field(default_factory=dict)


def crawl_console(http, search_text: str) -> Crawl:
    """Every console page reachable from /admin/ (links and search forms), and its forms."""
    result = Crawl()
    queue = ["/admin/"]
    variants: dict[str, int] = {}
    searched: set[tuple[str, tuple[str, ...]]] = set()
    while queue and len(result.visited) < MAX_PAGES:
        url = queue.pop(0)
        path = urlsplit(url).path
        if url in result.visited or variants.get(path, 0) >= VARIANTS_PER_PATH:
            continue
        variants[path] = variants.get(path, 0) + 1
        response = http.get(url)
        result.visited[url] = response.status_code
        body = response.get_data(as_text=True)  # reads a streamed download to its end
        response.close()
        if response.mimetype != "text/html":
            continue
        parser = _PageParser(url)
        parser.feed(body)
        queue.extend(_local(link) for link in parser.links if _inside_console(link))
        for form in parser.forms:
            if not _inside_console(form.action):
                continue
            key = (_local(form.action).split("?")[0], tuple(sorted(form.fields)))
            if form.method == "post":
                result.post_forms.setdefault(key, form)
            elif key not in searched:
                searched.add(key)
                base = _local(form.action).split("?")[0]
                queue.append(f"{base}?{urlencode(form.fields)}")
                typed = {**form.fields, **dict.fromkeys(form.text_fields, search_text)}
                queue.append(f"{base}?{urlencode(typed)}")
    return result


def database_state() -> dict[str, list[str]]:
    """Every row of every table that a request must not change, as text."""
    state = {}
    for table in db.metadata.sorted_tables:
        if table.name not in VOLATILE_TABLES:
            rows = db.session.execute(select(table)).all()
            state[table.name] = sorted(repr(tuple(row)) for row in rows)
    db.session.rollback()  # the next read sees what other requests committed
    return state


def csrf_token_of(http) -> str:
    with http.session_transaction() as session:
        return str(session["csrf_token"])


@pytest.fixture
def console(app, http):
    """An administrator's console, with a portal, its client, a person and their messages
    so that the pages of each (and their forms) exist."""
    portal = create_portal("lakeside", "Lakeside MLS")
    rp = make_client(portal_slug="lakeside", name="Lakeside app")
    person = make_user("pat@example.org", name="Pat Smith")
    make_mfa_method(person, "totp")
    db.session.add(Contact(portal_id=portal.id, external_id="C-1", email=person.email,
                           name="Pat Smith", user_id=person.id))
    import_rows(portal, legacy_row("JSmith", "js@example.org", name="Jo Smith"))
    failed = queue_email(person.email, "mfa_reset", name=person.name)
    failed.status, failed.last_error, failed.next_attempt_at = FAILED, "550 refused", utcnow()
    db.session.commit()
    console_sign_in(http, make_staff("admin", email="root@example.org"))
    return {"portal": portal, "client_id": rp.client.client_id, "person": person}


def test_every_console_form_refuses_a_post_without_its_own_sessions_token(app, http, console):
    crawl = crawl_console(http, console["person"].email)
    errors = {url: status for url, status in crawl.visited.items() if status >= 500}
    assert not errors, f"console pages failing: {errors}"
    visited = " ".join(crawl.visited)
    # The crawl reached the pages of the client, portal and person made here.
    assert f"/clients/{console['client_id']}" in visited
    assert "/portals/lakeside" in visited
    assert f"/people/{console['person'].id}" in visited
    assert crawl.post_forms, "no POST form found"

    other = app.test_client()
    console_sign_in(other, make_staff("admin", email="other@example.org"))
    foreign_token = csrf_token_of(other)
    assert foreign_token != csrf_token_of(http)

    failures = []
    for form in crawl.post_forms.values():
        target = _local(form.action)
        if "csrf_token" not in form.fields:
            failures.append(f"{target} (form on {form.page}): no csrf_token field")
            continue
        without = {k: v for k, v in form.fields.items() if k != "csrf_token"}
        for name, data in (("no token", without),
                           ("another session's token", {**without,
                                                        "csrf_token": foreign_token})):
            before = database_state()
            response = http.post(target, data=data)
            after = database_state()
            if response.status_code != 400:
                failures.append(f"{target} with {name}: {response.status_code}")
            changed = [table for table in before if before[table] != after[table]]
            if changed:
                failures.append(f"{target} with {name} changed {changed}")
    assert not failures, "\n".join(failures)
    # Still signed in, nothing recorded: the refused posts did nothing at all.
    assert http.get("/admin/").status_code == 200
    assert not db.session.scalars(select(AuditEvent).where(
        AuditEvent.kind.like("%csrf%"))).all()


def test_the_crawl_finds_the_sign_out_form_and_a_real_token_works(app, http, console):
    """The crawl is not vacuous: the forms it finds are real and post with their token."""
    crawl = crawl_console(http, console["person"].email)
    targets = {_local(form.action) for form in crawl.post_forms.values()}
    assert "/admin/sign-out" in targets
    sign_out = next(form for form in crawl.post_forms.values()
                    if _local(form.action) == "/admin/sign-out")
    assert http.post("/admin/sign-out", data=sign_out.fields).status_code == 303
    assert http.get("/admin/").status_code == 303
