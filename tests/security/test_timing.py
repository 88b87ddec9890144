"""User enumeration by timing: known and unknown accounts take the same time to answer.

Against a live server over real HTTP, as an attacker would measure: many sign-in attempts,
reset requests and registrations for accounts that exist and accounts that do not,
interleaved in a random order (so that load from anything else on the machine falls on
both alike), after a warm-up. The two sets of round-trip times are compared with a robust
statistic:

- the Mann-Whitney U test (ranks only: a few stalls of a loaded machine weigh no more than
  any other sample), two-sided p-value by the normal approximation with tie correction;
- the Hodges-Lehmann shift (the median of all pairwise differences), in seconds.

A difference counts as distinguishable when both say so: p < 0.001 *and* a shift larger
than the margin: a third of one argon2 verify on an idle core (sign-in), one millisecond
(reset, registration: about what one extra database write costs). So a skipped hash, or a
commit only known accounts pay, is caught, while microseconds of noise that happen to be
consistent over one run do not make the test flaky; a difference found is measured again,
and only one seen twice fails the test (a burst of load from elsewhere seldom repeats). One
test plants a leak (no hash for unknown emails) and checks it is caught: the statistic has
the power it claims.

argon2 runs at a fixed cost of its own here (t=1, 8 MiB: ~6 ms), above tests/conftest.py's
1 MiB (<1 ms) so that a skipped hash stands out from the request's own cost; the dummy hash
unknown accounts are verified against is made with the same parameters
(idp/security/passwords.py), as in production. Answers padded to a floor (legacy sign-in
failures, reset, registration: 0.25 s) are measured from six browsers at once.
"""

from __future__ import annotations

import math
import random
import secrets
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from idp.db import db
from idp.legacy import signin
from idp.portals import create_portal, update_portal
from tests.browser.conftest import LiveIdP, idp_host_name, live_idp  # noqa: F401
from tests.factories import REDIRECT_URI, make_client, make_user
from tests.html_forms import parse_forms
from tests.legacy import import_rows, legacy_row

WARM_UP = 10  # pairs measured and thrown away: first connections, caches, the JIT of SQLite
PAIRS = 100  # pairs compared: 5-10 s for sign-in on two busy cores
PADDED_PAIRS = 42  # answers padded to >= 0.25 s: fewer pairs, in parallel browsers
PARALLEL = 6
PARALLEL_WARM_UP = 2
USES_PER_ACCOUNT = 4  # below the throttle's 5 free failures per account
P_LIMIT = 0.001
HASH_SHARE = 1 / 3
EMAIL_MARGIN = 0.001
WRONG = "not the password, but long enough"


@pytest.fixture
def settings_overrides() -> dict[str, dict[str, Any]]:
    # One proxy hop is trusted so that each attempt can come from an address of its own
    # (X-Forwarded-For), as from a botnet: the per-address throttle never answers instead.
    return {"security": {"argon2_time_cost": 1, "argon2_memory_kib": 8192},
            "server": {"trusted_proxy_hops": 1}}


# -- the statistic ------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """Known vs unknown round-trip times, and whether an observer can tell them apart."""

    known: list[float]
    unknown: list[float]
    margin: float

    @property
    def shift(self) -> float:
        """Hodges-Lehmann: the median of every known - unknown difference (seconds)."""
        return statistics.median(k - u for k in self.known for u in self.unknown)

    @property
    def p_value(self) -> float:
        return mann_whitney_p(self.known, self.unknown)

    @property
    def distinguishable(self) -> bool:
        return self.p_value < P_LIMIT and abs(self.shift) > self.margin

    def __str__(self) -> str:
        ms = 1000
        return (f"known median {statistics.median(self.known) * ms:.2f} ms, unknown median "
                f"{statistics.median(self.unknown) * ms:.2f} ms, shift {self.shift * ms:+.3f} ms "
                f"(margin {self.margin * ms:.2f} ms), Mann-Whitney p = {self.p_value:.2g}, "
                f"n = {len(self.known)} + {len(self.unknown)}")


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test (normal approximation, ties corrected)."""
    values = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    n1, n2, n = len(a), len(b), len(values)
    rank_sum_a, ties, i = 0.0, 0.0, 0
    while i < n:
        j = i
        while j + 1 < n and values[j + 1][0] == values[i][0]:
            j += 1
        rank = (i + j) / 2 + 1  # ranks i+1 .. j+1 share their average
        rank_sum_a += rank * sum(1 for k in range(i, j + 1) if values[k][1] == 0)
        size = j - i + 1
        ties += size ** 3 - size
        i = j + 1
    u = rank_sum_a - n1 * (n1 + 1) / 2
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))))
    if sigma == 0:
        return 1.0
    z = (u - n1 * n2 / 2) / sigma
    return math.erfc(abs(z) / math.sqrt(2))


def test_the_statistic_tells_a_shifted_sample_from_noise() -> None:
    rng = random.Random(8)
    noise = [rng.lognormvariate(-5, 0.4) for _ in range(300)]  # ~7 ms with a long tail
    same = Comparison(noise[:150], noise[150:], margin=0.002)
    assert not same.distinguishable and same.p_value > 0.01, same
    slower = Comparison([x + 0.006 for x in noise[:150]], noise[150:], margin=0.002)
    assert slower.distinguishable and abs(slower.shift - 0.006) < 0.002, slower


def measure_pairs(known: Callable[[], float], unknown: Callable[[], float], pairs: int,
                  warm_up: int = WARM_UP) -> tuple[list[float], list[float]]:
    """Interleave: each pair runs both, in a random order; the warm-up is discarded."""
    rng = random.Random()
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    for index in range(warm_up + pairs):
        order = [("known", known), ("unknown", unknown)]
        rng.shuffle(order)
        for name, attempt in order:
            took = attempt()
            if index >= warm_up:
                times[name].append(took)
    return times["known"], times["unknown"]


def measure_in_parallel(
    open_page: Callable[[], Callable[[str], float]], known: Callable[[], str],
    unknown: Callable[[], str], pairs: int,
) -> tuple[list[float], list[float]]:
    """`measure_pairs` in PARALLEL browsers at once, for answers padded with a sleep: the
    sleeps overlap, so the run takes a fraction of the time at no cost in accuracy."""
    results: list[tuple[list[float], list[float]]] = []

    def browse() -> None:
        attempt = open_page()
        results.append(measure_pairs(lambda: attempt(known()), lambda: attempt(unknown()),
                                     pairs // PARALLEL, warm_up=PARALLEL_WARM_UP))

    threads = [threading.Thread(target=browse) for _ in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == PARALLEL, "a browser failed (see the captured log)"
    return [t for k, _ in results for t in k], [t for _, u in results for t in u]


def assert_indistinguishable(measure: Callable[[], Comparison]) -> None:
    """No difference, or none in a second measurement: a real leak shows both times, a
    burst of load from elsewhere on a shared machine seldom does."""
    first = measure()
    if first.distinguishable:
        second = measure()
        assert not second.distinguishable, f"{first}; measured again: {second}"


def test_a_difference_fails_only_when_measured_twice() -> None:
    rng = random.Random(8)
    noise = [rng.lognormvariate(-5, 0.4) for _ in range(300)]
    same = Comparison(noise[:150], noise[150:], margin=0.002)
    leak = Comparison([x + 0.006 for x in noise[:150]], noise[150:], margin=0.002)
    once = iter([leak, same])
    assert_indistinguishable(lambda: next(once))  # a burst of load: measured again, gone
    with pytest.raises(AssertionError, match="measured again"):
        assert_indistinguishable(lambda: leak)


# -- sign-in ------------------------------------------------------------------------------


def forwarded_for() -> dict[str, str]:
    """A fresh client address in the documentation range 198.18.0.0/15."""
    return {"X-Forwarded-For": f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"}


class SignInPage:
    """One browser at the password page of a login transaction; each attempt is timed."""

    def __init__(self, idp: LiveIdP, client_id: str) -> None:
        self.browser = requests.Session()
        response = self.browser.get(f"{idp.url}/authorize", headers=forwarded_for(), params={
            "client_id": client_id, "response_type": "code", "redirect_uri": REDIRECT_URI,
            "scope": "openid email", "state": "s"}, timeout=10)
        assert response.status_code == 200, response.status_code
        form = parse_forms(response.text)[0]
        self.url, self.fields = f"{idp.url}{form.action}", form.fields

    def attempt(self, identifier: str, password: str = WRONG) -> float:
        data = {**self.fields, "email": identifier, "password": password}
        headers = forwarded_for()
        started = time.perf_counter()
        response = self.browser.post(self.url, data=data, headers=headers, timeout=10,
                                     allow_redirects=False)
        took = time.perf_counter() - started
        assert response.status_code == 200 and "match an account" in response.text, (
            response.status_code, response.text[:300])
        return took


def rotating(names: list[str]) -> Callable[[], str]:
    """Each name in turn, USES_PER_ACCOUNT times over at most (the throttle's free failures)."""
    queue = [name for name in names for _ in range(USES_PER_ACCOUNT)]
    random.shuffle(queue)
    return queue.pop


def hash_seconds(idp: LiveIdP) -> float:
    """What one argon2 verify costs on an idle core of this machine (the fastest of 15)."""
    passwords = idp.app.extensions["idp"].passwords
    stored = passwords.hash("some password")
    times = []
    for _ in range(15):
        started = time.perf_counter()
        passwords.verify(stored, "another password")
        times.append(time.perf_counter() - started)
    return min(times)


@dataclass
class SignInTarget:
    client_id: str
    known: Callable[[], str]  # the next known email to try (each at most 4 times)
    unknown: Callable[[], str]


@pytest.fixture
def sign_in_target(live_idp: LiveIdP) -> SignInTarget:  # noqa: F811
    """A client, and people enough for two measurements to use each account <= 4 times."""
    accounts = 2 * (WARM_UP + PAIRS) // USES_PER_ACCOUNT + 1
    with live_idp.app.app_context():
        client_id = make_client().client.client_id
        known = [make_user(f"known{n}@example.org").email for n in range(accounts)]
        db.session.remove()
    unknown = [f"nobody{n}.{secrets.token_hex(3)}@example.org" for n in range(accounts)]
    return SignInTarget(client_id, rotating(known), rotating(unknown))


def compare_sign_ins(idp: LiveIdP, target: SignInTarget, pairs: int = PAIRS) -> Comparison:
    page = SignInPage(idp, target.client_id)
    known_times, unknown_times = measure_pairs(lambda: page.attempt(target.known()),
                                               lambda: page.attempt(target.unknown()), pairs)
    return Comparison(known_times, unknown_times, margin=hash_seconds(idp) * HASH_SHARE)


def test_a_wrong_password_for_a_known_email_takes_as_long_as_an_unknown_email(
    live_idp: LiveIdP, sign_in_target: SignInTarget,  # noqa: F811
) -> None:
    assert_indistinguishable(lambda: compare_sign_ins(live_idp, sign_in_target))


def test_the_timing_check_catches_a_sign_in_that_skips_the_hash_for_unknown_emails(
    live_idp: LiveIdP, sign_in_target: SignInTarget, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    passwords = live_idp.app.extensions["idp"].passwords
    honest = passwords.verify

    def leaky(stored_hash: str | None, password: str) -> bool:
        return False if stored_hash is None else honest(stored_hash, password)

    monkeypatch.setattr(passwords, "verify", leaky)
    result = compare_sign_ins(live_idp, sign_in_target, pairs=48)
    assert result.distinguishable and result.shift > 0, str(result)


# -- legacy usernames ------------------------------------------------------------------------


@dataclass
class LegacyTarget:
    client_id: str
    usernames: list[str]


@pytest.fixture
def legacy_target(live_idp: LiveIdP) -> LegacyTarget:  # noqa: F811
    accounts = 2 * (PARALLEL * PARALLEL_WARM_UP + PADDED_PAIRS) // USES_PER_ACCOUNT + 1
    with live_idp.app.app_context():
        portal = create_portal("lakeside", "Lakeside MLS")
        usernames = [f"agent{n}" for n in range(accounts)]
        import_rows(portal, *(legacy_row(name, f"{name}@example.org") for name in usernames))
        client_id = make_client(portal_slug=portal.slug).client.client_id
        db.session.remove()
    return LegacyTarget(client_id, usernames)


@pytest.fixture
def fresh_padding() -> Iterator[None]:
    """The padding's memory of the slowest failure is per process: start from its floor."""
    kept = signin._slowest
    signin._slowest = signin.FAILURE_FLOOR_SECONDS
    yield
    signin._slowest = kept


def test_a_wrong_password_for_a_legacy_username_takes_as_long_as_an_unknown_username(
    live_idp: LiveIdP, legacy_target: LegacyTarget, fresh_padding: None,  # noqa: F811
) -> None:
    known = rotating(legacy_target.usernames)
    unknown = rotating([f"nobody{n}" for n in range(len(legacy_target.usernames))])

    def measure() -> Comparison:
        known_times, unknown_times = measure_in_parallel(
            lambda: SignInPage(live_idp, legacy_target.client_id).attempt, known, unknown,
            PADDED_PAIRS)
        result = Comparison(known_times, unknown_times,
                            margin=hash_seconds(live_idp) * HASH_SHARE)
        assert min(known_times + unknown_times) >= signin.FAILURE_FLOOR_SECONDS, str(result)
        return result

    assert_indistinguishable(measure)


# -- Password not working? and New user? ---------------------------------------------------


class EmailForm:
    """One browser at a page that takes an email (/reset, /register); each POST is timed."""

    def __init__(self, url: str, answer: str, **values: str) -> None:
        self.browser = requests.Session()
        self.url, self.answer, self.values = url, answer, values
        response = self.browser.get(url, timeout=10)
        assert response.status_code == 200, response.status_code
        self.fields = parse_forms(response.text)[0].fields

    def submit(self, email: str) -> float:
        data = {**self.fields, **self.values, "email": email}
        started = time.perf_counter()
        response = self.browser.post(self.url, data=data, timeout=10, allow_redirects=False)
        took = time.perf_counter() - started
        assert response.status_code == 200 and self.answer in response.text, (
            response.status_code, response.text[:300])
        return took


def some_unknown_email() -> str:
    return f"nobody.{secrets.token_hex(4)}@example.org"


def test_a_reset_request_for_a_known_email_takes_as_long_as_an_unknown_email(
    live_idp: LiveIdP,  # noqa: F811
) -> None:
    with live_idp.app.app_context():
        known = make_user("reset.me@example.org").email
        db.session.remove()
    assert_indistinguishable(lambda: Comparison(*measure_in_parallel(
        lambda: EmailForm(f"{live_idp.url}/reset", "Check your email").submit,
        lambda: known, some_unknown_email, PADDED_PAIRS), margin=EMAIL_MARGIN))


def test_registering_a_known_email_takes_as_long_as_an_unknown_email(
    live_idp: LiveIdP,  # noqa: F811
) -> None:
    with live_idp.app.app_context():
        create_portal("grace", "Grace Church")
        update_portal("grace", {"self_registration": "create"})
        known = make_user("member@example.org").email
        db.session.remove()
    assert_indistinguishable(lambda: Comparison(*measure_in_parallel(
        lambda: EmailForm(f"{live_idp.url}/register?portal=grace", "Check your email",
                          name="Pat Doe").submit,
        lambda: known, some_unknown_email, PADDED_PAIRS), margin=EMAIL_MARGIN))
