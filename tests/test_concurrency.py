"""Row-level guarantees under concurrency: single-use codes, refresh rotation, link
redemption, outbox claiming and failure counting hold when many requests race.

Each racer is a thread with its own app context, so its own session and database
connection: on SQLite a file database with WAL, on PostgreSQL (IDP_TEST_DATABASE_URL)
separate server connections. A barrier releases them together.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from flask import Flask

from idp.account.links import issue_link
from idp.db import db
from idp.models import ActionLink, User
from idp.models.outbox import SENT, OutboxMessage
from idp.models.throttle import ThrottleCounter
from idp.notify.outbox import queue_email
from idp.notify.worker import claim_due_messages, deliver_due
from idp.security import throttle
from tests.driver import exchange_code, sign_in, submit_form, token_request
from tests.factories import make_client, make_user

RACERS = 20
T = TypeVar("T")


def race(app: Flask, attempt: Callable[[], T], racers: int = RACERS) -> list[T]:
    """Run `attempt` in `racers` threads at once, each in its own app context."""
    barrier = threading.Barrier(racers)

    def run() -> T:
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                return attempt()
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=racers) as pool:
        futures = [pool.submit(run) for _ in range(racers)]
        return [future.result(timeout=120) for future in futures]


@pytest.fixture
def rp(app):
    return make_client()


@pytest.fixture
def user(app):
    return make_user()


def test_an_authorization_code_is_redeemed_once_when_twenty_requests_race(app, http, rp, user):
    code = sign_in(http, rp.client.client_id, user.email).code
    db.session.remove()  # the racers must not wait on this test's own connection

    def redeem() -> int:
        response = exchange_code(app.test_client(), code, rp.client.client_id, rp.client_secret)
        assert response.status_code in (200, 400), response.get_data(as_text=True)
        return response.status_code

    assert Counter(race(app, redeem)) == {200: 1, 400: RACERS - 1}


def test_a_refresh_token_rotates_once_when_twenty_requests_race(app, http, rp, user):
    code = sign_in(http, rp.client.client_id, user.email, scope="openid offline_access").code
    tokens = exchange_code(http, code, rp.client.client_id, rp.client_secret).json
    db.session.remove()

    def refresh() -> int:
        response = token_request(
            app.test_client(),
            {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            rp.client.client_id, rp.client_secret,
        )
        assert response.status_code in (200, 400), response.get_data(as_text=True)
        return response.status_code

    assert Counter(race(app, refresh)) == {200: 1, 400: RACERS - 1}


def test_a_reset_link_sets_one_password_when_twenty_requests_race(app, user):
    _, token = issue_link("reset", user.email, 1, user=user)
    db.session.commit()
    user_id, email = user.id, user.email
    db.session.remove()
    # Each browser opens the link first (its own CSRF token), then all submit at once.
    browsers = []
    for number in range(RACERS):
        browser = app.test_client()
        page = browser.get(f"/password/{token}")
        assert page.status_code == 200
        browsers.append((browser, page, f"a new password number {number:02d}"))
    db.session.remove()
    turns = iter(browsers)
    lock = threading.Lock()

    def submit() -> tuple[int, str]:
        with lock:
            browser, page, password = next(turns)
        response = submit_form(browser, page, password=password)
        assert response.status_code in (303, 410), response.get_data(as_text=True)[:300]
        return response.status_code, password

    results = race(app, submit)
    assert Counter(status for status, _ in results) == {303: 1, 410: RACERS - 1}
    [winner] = [password for status, password in results if status == 303]
    stored = db.session.get(User, user_id)
    assert stored is not None
    assert app.extensions["idp"].passwords.verify(stored.password_hash, winner)
    link = db.session.execute(db.select(ActionLink).filter_by(email=email)).scalar_one()
    assert link.used_at is not None


def queue_messages(count: int) -> list[int]:
    ids = []
    for number in range(count):
        message = queue_email(f"person{number}@example.org", "reset_password", name="Pat",
                              portal_name="Lakeside MLS", link="https://idp.example/r/x",
                              lifetime="1 day")
        db.session.flush()
        ids.append(message.id)
    db.session.commit()
    db.session.remove()
    return ids


def test_two_workers_claiming_the_same_outbox_claim_each_message_once(app):
    ids = queue_messages(60)

    def claim_all() -> list[int]:
        mine: list[int] = []
        while batch := claim_due_messages(limit=7):
            mine += [message.id for message in batch]
        return mine

    first, second = race(app, claim_all, racers=2)
    assert sorted(first + second) == ids  # every message claimed, none by both


def test_two_workers_delivering_the_same_outbox_send_each_message_once(app):
    ids = queue_messages(40)

    def deliver_all() -> int:
        sent = 0
        while count := deliver_due(limit=5):
            sent += count
        return sent

    assert sum(race(app, deliver_all, racers=2)) == len(ids)
    rows = db.session.scalars(db.select(OutboxMessage)).all()
    assert {(row.status, row.attempts) for row in rows} == {(SENT, 1)}


def test_failures_racing_on_one_new_throttle_counter_are_all_counted(app):
    key = throttle.account_key("password", "racer@example.org")

    def fail() -> Any:
        throttle.record_failure(key)

    race(app, fail)
    counter = db.session.get(ThrottleCounter, key.digest)
    assert counter is not None and counter.failures == RACERS
