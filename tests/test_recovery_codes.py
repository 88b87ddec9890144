"""Recovery codes: 10 single-use codes, stored hashed, regenerable; they pass the challenge."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from idp.db import db
from idp.mfa.recovery import generate_recovery_codes, remaining_recovery_codes, use_recovery_code
from idp.models import RecoveryCode
from idp.portals import create_portal, update_portal
from tests.driver import (
    answer_mfa,
    follow_to_client,
    open_login_page,
    pkce_pair,
    query_of,
    redeem,
    shows_step,
    submit_form,
)
from tests.factories import PASSWORD, make_client, make_mfa_method, make_user
from tests.html_forms import parse_links


@pytest.fixture
def rp(app):
    portal = create_portal("mls", "Lakeside MLS")
    update_portal(portal.slug, {"mfa_required_from": str(date.today() - timedelta(days=1))})
    return make_client(portal_slug=portal.slug)


@pytest.fixture
def user(app):
    person = make_user()
    make_mfa_method(person, "totp")
    return person


def recovery_page(http, rp, user, **params):
    page = open_login_page(http, rp.client.client_id, **params)
    page = follow_to_client(http, submit_form(http, page, email=user.email, password=PASSWORD))
    assert shows_step(page, "mfa_challenge")
    choices = http.get(parse_links(page.get_data(as_text=True))["Try another method"])
    return http.get(parse_links(choices.get_data(as_text=True))["Recovery code"])


def test_ten_distinct_codes_stored_only_as_hashes(app, user):
    codes = generate_recovery_codes(user)
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = db.session.scalars(db.select(RecoveryCode.code_hash)).all()
    assert len(stored) == 10
    assert not {c.replace("-", "") for c in codes} & set(stored)


def test_a_recovery_code_passes_the_challenge_once(app, rp, user):
    [code, *_] = generate_recovery_codes(user)
    http = app.test_client()
    verifier, challenge = pkce_pair()
    page = recovery_page(http, rp, user, code_challenge=challenge, code_challenge_method="S256")
    assert "Enter one of your recovery codes" in page.get_data(as_text=True)
    done = follow_to_client(http, answer_mfa(http, page, code.upper().replace("-", " ")))
    claims = redeem(http, rp.client.client_id, rp.client_secret,
                    query_of(done.location)["code"], verifier)
    assert claims["amr"] == ["pwd", "mfa"]
    assert remaining_recovery_codes(user) == 9

    other = app.test_client()
    page = recovery_page(other, rp, user)
    again = answer_mfa(other, page, code)
    assert shows_step(again, "mfa_challenge")
    assert "recovery code didn" in again.get_data(as_text=True)


def test_regenerating_replaces_every_old_code(app, user):
    old = generate_recovery_codes(user)
    new = generate_recovery_codes(user)
    assert not set(old) & set(new)
    assert not use_recovery_code(user, old[0])
    assert use_recovery_code(user, new[0])
    assert remaining_recovery_codes(user) == 9


def test_codes_of_one_person_do_not_work_for_another(app, user):
    [code, *_] = generate_recovery_codes(user)
    assert not use_recovery_code(make_user(), code)
    assert use_recovery_code(user, code)
