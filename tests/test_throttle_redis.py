"""The throttle with its counters in Redis (security.throttle_redis_url): the same rules as
tests/test_throttle.py, which runs here again against a real Redis server, nothing in the
database, and increments that race from many threads all counted.

Skipped when no Redis answers at IDP_TEST_REDIS_URL (default redis://127.0.0.1:6379/15).
"""

from __future__ import annotations

import os
import threading

import pytest

from idp.db import db
from idp.models.throttle import ThrottleCounter
from idp.security import throttle
from idp.security.throttle_redis import PREFIX
from tests.test_throttle import *  # noqa: F403  (every rule, again, on Redis)
from tests.test_throttle import fail

REDIS_URL = os.environ.get("IDP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(autouse=True)
def redis_server():
    """A reachable Redis, without throttle counters before and after the test."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"needs a Redis server at {REDIS_URL} (IDP_TEST_REDIS_URL)")

    def clear() -> None:
        for key in client.scan_iter(f"{PREFIX}*"):
            client.delete(key)

    clear()
    yield client
    clear()
    client.close()


@pytest.fixture
def settings_overrides():
    return {"security": {"throttle_redis_url": REDIS_URL}}


def test_counters_live_in_redis_not_in_the_database(app, redis_server):
    key = throttle.account_key("password", "pat@example.org")
    fail(3, key)
    assert db.session.scalars(db.select(ThrottleCounter)).all() == []
    assert int(redis_server.hget(PREFIX + key.digest, "failures")) == 3
    assert 0 < redis_server.ttl(PREFIX + key.digest) <= 12 * 3600


def test_failures_racing_from_many_threads_are_all_counted(app, redis_server):
    key = throttle.account_key("password", "racer@example.org")
    barrier = threading.Barrier(20)

    def fail_once() -> None:
        with app.app_context():
            barrier.wait(timeout=30)
            throttle.record_failure(key)
            db.session.remove()

    threads = [threading.Thread(target=fail_once) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert int(redis_server.hget(PREFIX + key.digest, "failures")) == 20


def test_readyz_checks_the_throttle_redis(http):
    checks = http.get("/readyz").json["checks"]
    assert checks == {"database": "ok", "signing_keys": "ok", "throttle_redis": "ok"}
