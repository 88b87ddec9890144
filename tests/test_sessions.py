"""IdP sessions under the portal's policy: "Keep me signed in", idle timeout, absolute maximum.

Whether a browser is still signed in is asked the way a portal asks: a `prompt=none`
authorization, answered with a code or with `login_required`.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from idp.db import db
from idp.models import IdpSession
from idp.policy import KEEP_SIGNED_IN_LIMIT_DAYS
from idp.portals import create_portal, update_portal
from tests.driver import (
    authorize,
    follow_to_client,
    open_login_page,
    query_of,
    shows_step,
    submit_form,
)
from tests.factories import PASSWORD, make_client, make_user
from tests.test_cli import assert_ok, assert_one_line_error, idp, query

COOKIE = "idp_session"  # the session cookie's name on an http:// issuer (tests)
MINUTE, HOUR, DAY = 60, 3600, 86400


@pytest.fixture
def portal(app):
    return create_portal("ministry", "Grace Church Ministry")


@pytest.fixture
def rp(portal):
    return make_client(portal_slug=portal.slug)


@pytest.fixture
def user(app):
    return make_user()


def set_policy(portal, **settings: object) -> None:
    update_portal(portal.slug, {key: str(value) for key, value in settings.items()})


def session_cookies(response) -> list[str]:
    """The Set-Cookie headers of the IdP session cookie in `response`."""
    return [h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE + "=")]


def sign_in_at_the_page(http, client_id: str, email: str, keep: bool) -> str:
    """Sign in on the password page, ticking "Keep me signed in" or not; the last cookie set."""
    page = open_login_page(http, client_id)
    assert shows_step(page, "password")
    values = {"email": email, "password": PASSWORD}
    if keep:
        values["keep_signed_in"] = "yes"
    response = submit_form(http, page, **values)
    cookies = session_cookies(response)
    while response.status_code in (302, 303) and response.location.startswith("/"):
        response = http.get(response.location)
        cookies += session_cookies(response)
    assert response.status_code in (302, 303), response.status_code
    assert "code" in query_of(response.location), response.location
    assert cookies, "no session cookie was set"
    return cookies[-1]


def answer_to_prompt_none(http, client_id: str) -> dict[str, str]:
    response = follow_to_client(http, authorize(http, client_id, prompt="none"))
    assert response.status_code == 302, response.status_code
    return query_of(response.location)


def is_signed_in(http, client_id: str) -> bool:
    """Ask as a portal would (prompt=none): a code, or login_required."""
    answer = answer_to_prompt_none(http, client_id)
    if "code" in answer:
        return True
    assert answer["error"] == "login_required", answer
    return False


def cookie_expiry(set_cookie: str) -> datetime | None:
    """The Expires of a Set-Cookie header (None for a browser-session cookie)."""
    for part in set_cookie.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "expires":
            return parsedate_to_datetime(value)
        assert name.lower() != "max-age" or not value, set_cookie  # Flask uses Expires
    return None


def live_sessions() -> list[IdpSession]:
    db.session.expire_all()
    return [s for s in db.session.scalars(db.select(IdpSession)).all() if s.is_current()]


# -- Keep me signed in ----------------------------------------------------------------------


def test_keep_me_signed_in_sets_a_persistent_cookie_of_at_most_90_days(http, rp, user):
    cookie = sign_in_at_the_page(http, rp.client.client_id, user.email, keep=True)
    expires = cookie_expiry(cookie)
    assert expires is not None, cookie
    remaining = expires - datetime.now(UTC)
    assert timedelta(days=KEEP_SIGNED_IN_LIMIT_DAYS - 1) < remaining \
        <= timedelta(days=KEEP_SIGNED_IN_LIMIT_DAYS)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    [record] = live_sessions()
    assert record.persistent and record.idle_timeout_minutes is None


@pytest.mark.parametrize("max_days", [None, 30, 1])
def test_keep_me_signed_in_lasts_up_to_the_portals_maximum_and_no_longer(
    http, clock, portal, rp, user, max_days
):
    if max_days is not None:
        set_policy(portal, keep_me_signed_in_max_days=max_days)
    days = max_days or 90  # the default is the seeds' "up to three months"
    sign_in_at_the_page(http, rp.client.client_id, user.email, keep=True)
    clock.advance(days * DAY - 10 * MINUTE)
    assert is_signed_in(http, rp.client.client_id)
    clock.advance(20 * MINUTE)
    assert not is_signed_in(http, rp.client.client_id)
    # Signed out for good: the next authorization asks for the password again.
    assert shows_step(open_login_page(http, rp.client.client_id), "password")


def test_keep_me_signed_in_survives_idle_periods_longer_than_the_idle_timeout(
    http, clock, portal, rp, user
):
    set_policy(portal, idle_timeout_minutes=15, session_max_hours=2)
    sign_in_at_the_page(http, rp.client.client_id, user.email, keep=True)
    for idle in (16 * MINUTE, 3 * HOUR, 6 * DAY, 20 * DAY):
        clock.advance(idle)
        assert is_signed_in(http, rp.client.client_id), f"ended after {idle} s idle"


def test_keep_me_signed_in_is_remembered_when_the_password_was_wrong(http, rp, user):
    page = open_login_page(http, rp.client.client_id)
    again = submit_form(http, page, email=user.email, password="not the password",
                        keep_signed_in="yes")
    assert shows_step(again, "password")
    assert 'value="yes" checked' in again.get_data(as_text=True)


# -- without Keep me signed in --------------------------------------------------------------


def test_without_keep_me_signed_in_the_cookie_ends_with_the_browser(http, rp, user):
    cookie = sign_in_at_the_page(http, rp.client.client_id, user.email, keep=False)
    assert cookie_expiry(cookie) is None, cookie
    [record] = live_sessions()
    assert not record.persistent


def test_signing_in_again_without_keep_me_signed_in_makes_the_cookie_a_browser_cookie(
    http, rp, user
):
    sign_in_at_the_page(http, rp.client.client_id, user.email, keep=True)
    page = open_login_page(http, rp.client.client_id, prompt="login")
    response = submit_form(http, page, email=user.email, password=PASSWORD)
    cookies = session_cookies(response)
    while response.status_code in (302, 303) and response.location.startswith("/"):
        response = http.get(response.location)
        cookies += session_cookies(response)
    assert cookies and cookie_expiry(cookies[-1]) is None, cookies
    [record] = live_sessions()
    assert not record.persistent and record.idle_timeout_minutes == 30


@pytest.mark.parametrize("idle_minutes", [None, 10])
def test_without_keep_the_session_ends_after_the_idle_timeout(
    http, clock, portal, rp, user, idle_minutes
):
    if idle_minutes is not None:
        set_policy(portal, idle_timeout_minutes=idle_minutes)
    minutes = idle_minutes or 30  # the policy's default
    sign_in_at_the_page(http, rp.client.client_id, user.email, keep=False)
    clock.advance((minutes + 1) * MINUTE)
    assert not is_signed_in(http, rp.client.client_id)
    assert shows_step(open_login_page(http, rp.client.client_id), "password")


def test_activity_within_the_idle_timeout_keeps_the_session_alive(http, clock, rp, user):
    sign_in_at_the_page(http, rp.client.client_id, user.email, keep=False)
    for _ in range(6):  # 2.5 hours in all, never idle for 30 minutes
        clock.advance(25 * MINUTE)
        assert is_signed_in(http, rp.client.client_id)


@pytest.mark.parametrize("max_hours", [None, 2])
def test_without_keep_the_session_ends_after_the_maximum_even_when_active(
    http, clock, portal, rp, user, max_hours
):
    if max_hours is not None:
        set_policy(portal, session_max_hours=max_hours)
    hours = max_hours or 12  # the policy's default
    sign_in_at_the_page(http, rp.client.client_id, user.email, keep=False)
    elapsed = 0
    while elapsed + 20 * MINUTE < hours * HOUR:
        clock.advance(20 * MINUTE)
        elapsed += 20 * MINUTE
        assert is_signed_in(http, rp.client.client_id), f"ended after {elapsed} s"
    clock.advance(hours * HOUR - elapsed + MINUTE)
    assert not is_signed_in(http, rp.client.client_id)


# -- the portal's policy --------------------------------------------------------------------


def test_a_policy_change_applies_to_new_sign_ins(app, clock, portal, rp, user):
    set_policy(portal, idle_timeout_minutes=5, keep_me_signed_in_max_days=7)
    brief = app.test_client()
    sign_in_at_the_page(brief, rp.client.client_id, user.email, keep=False)
    kept = app.test_client()
    sign_in_at_the_page(kept, rp.client.client_id, user.email, keep=True)

    clock.advance(6 * MINUTE)
    assert not is_signed_in(brief, rp.client.client_id)
    assert is_signed_in(kept, rp.client.client_id)
    clock.advance(7 * DAY)
    assert not is_signed_in(kept, rp.client.client_id)


def test_the_keep_me_signed_in_hint_shows_the_portals_maximum(http, portal, rp):
    set_policy(portal, keep_me_signed_in_max_days=14)
    page = open_login_page(http, rp.client.client_id)
    assert "For up to 14 days on this device" in page.get_data(as_text=True)


@pytest.fixture(scope="module")
def cli_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    instance = tmp_path_factory.mktemp("sessions-cli") / "instance"
    assert_ok(idp(instance, "init"))
    assert_ok(idp(instance, "portals", "create", "--slug", "mls", "--name", "Lakeside MLS"))
    return instance


@pytest.fixture
def cli_instance(tmp_path: Path, cli_template: Path) -> Path:
    copy = tmp_path / "instance"
    shutil.copytree(cli_template, copy)
    return copy


def stored_policy(instance: Path) -> str:
    return str(query(instance, "SELECT policy FROM portals WHERE slug = 'mls'")[0][0])


@pytest.mark.parametrize("value", ["91", "365", "0", "-1", "ninety"])
def test_portals_set_refuses_a_keep_me_signed_in_maximum_outside_1_to_90_days(
    cli_instance, value
):
    before = stored_policy(cli_instance)
    result = idp(cli_instance, "portals", "set", "mls", f"keep_me_signed_in_max_days={value}")
    assert_one_line_error(result, "keep_me_signed_in_max_days")
    assert stored_policy(cli_instance) == before


def test_portals_set_accepts_90_days_and_session_limits(cli_instance):
    assert_ok(idp(cli_instance, "portals", "set", "mls", "keep_me_signed_in_max_days=90",
                  "idle_timeout_minutes=15", "session_max_hours=8"))
    policy = stored_policy(cli_instance)
    for fragment in ('"keep_me_signed_in_max_days": 90', '"idle_timeout_minutes": 15',
                     '"session_max_hours": 8'):
        assert fragment in policy, policy


# -- Several portals ------------------------------------------------------------------------


def test_a_long_session_from_one_portal_does_not_sign_in_at_a_stricter_portal(
    http, clock, rp, user
):
    strict_portal = create_portal("strict", "Strict Association")
    set_policy(strict_portal, keep_me_signed_in_max_days=7)
    strict = make_client(portal_slug="strict")
    sign_in_at_the_page(http, rp.client.client_id, user.email, keep=True)  # 90 days here
    clock.advance(8 * DAY)
    assert is_signed_in(http, rp.client.client_id)
    assert not is_signed_in(http, strict.client.client_id)
    assert shows_step(open_login_page(http, strict.client.client_id), "password")
