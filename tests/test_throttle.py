"""Throttling: free failures, then doubling waits, reset on success, never a permanent lock."""

from __future__ import annotations

from idp.security import throttle
from idp.security.throttle import account_key, address_key, check, record_failure, record_success


def fail(times: int, *keys) -> None:
    for _ in range(times):
        record_failure(*keys)


def test_the_first_failures_are_free(app):
    key = account_key("password", "pat@example.org")
    fail(throttle.ACCOUNT.free - 1, key)
    assert check(key).allowed


def test_waits_double_after_the_free_failures(app, clock):
    key = account_key("password", "pat@example.org")
    fail(throttle.ACCOUNT.free, key)
    assert check(key).wait_seconds == 1
    record_failure(key)
    assert check(key).wait_seconds == 2
    record_failure(key)
    assert check(key).wait_seconds == 4
    clock.advance(4)
    assert check(key).allowed


def test_waits_are_capped(app):
    key = account_key("password", "pat@example.org")
    fail(throttle.ACCOUNT.free + 30, key)
    assert check(key).wait_seconds == throttle.ACCOUNT.max_wait


def test_success_resets_the_count(app):
    key = account_key("password", "pat@example.org")
    fail(throttle.ACCOUNT.free + 3, key)
    record_success(key)
    assert check(key).allowed


def test_counters_forget_after_a_quiet_period(app, clock):
    key = account_key("password", "pat@example.org")
    fail(throttle.ACCOUNT.free + 3, key)
    clock.advance(12 * 3600)
    assert check(key).allowed
    record_failure(key)  # counts from one again
    assert check(key).allowed


def test_keys_are_independent_and_the_strictest_decides(app):
    pat = account_key("password", "pat@example.org")
    sam = account_key("password", "sam@example.org")
    ip = address_key("password", "203.0.113.9")
    fail(throttle.ACCOUNT.free + 2, pat)
    assert check(sam, ip).allowed
    assert check(pat, ip).wait_seconds == 4


def test_account_keys_ignore_case(app):
    fail(throttle.ACCOUNT.free + 1, account_key("password", "Pat@Example.org"))
    assert not check(account_key("password", "pat@example.org")).allowed


def test_an_account_stops_after_100_consecutive_failures_until_reset(app, clock):
    key = account_key("password", "pat@example.org")
    fail(throttle.MAX_CONSECUTIVE_FAILURES, key)
    clock.advance(3600)  # waits have passed, but the account stays locked
    assert check(key).locked
    record_success(key)  # what a completed reset does
    assert check(key).allowed


def test_wait_text_reads_naturally():
    assert throttle.wait_text(1) == "1 second"
    assert throttle.wait_text(45) == "45 seconds"
    assert throttle.wait_text(61) == "2 minutes"
