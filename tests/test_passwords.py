"""Password hashing: argon2id with configured parameters, rehash on sign-in, NFKC."""

from __future__ import annotations

import pytest

from idp.config import SecuritySettings
from idp.db import db
from idp.models import User
from idp.security.passwords import PasswordHashing
from tests.driver import authorize, follow_to_client, sign_in, submit_form
from tests.factories import PASSWORD, make_client, make_user

CHEAP = SecuritySettings(argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1)
STRONGER = {"security": {"argon2_time_cost": 2, "argon2_memory_kib": 2048}}


def parameters_of(stored_hash: str) -> str:
    """The `m=...,t=...,p=...` part of an encoded argon2 hash."""
    variant, version, parameters = stored_hash.split("$")[1:4]
    assert (variant, version) == ("argon2id", "v=19"), stored_hash
    return parameters


def stored_hash_of(user: User) -> str:
    db.session.expire_all()
    return str(db.session.get(User, user.id).password_hash)


def test_hashes_are_argon2id_with_the_configured_parameters():
    hashing = PasswordHashing(
        SecuritySettings(argon2_time_cost=3, argon2_memory_kib=2048, argon2_parallelism=2)
    )
    assert parameters_of(hashing.hash("a long enough password")) == "m=2048,t=3,p=2"


def test_the_app_hashes_with_its_settings(app):
    user = make_user()
    assert parameters_of(user.password_hash) == "m=1024,t=1,p=1"
    assert PASSWORD not in user.password_hash


def test_each_hash_has_its_own_salt():
    hashing = PasswordHashing(CHEAP)
    assert hashing.hash("same password") != hashing.hash("same password")


def test_verify_accepts_the_password_and_refuses_others():
    hashing = PasswordHashing(CHEAP)
    stored = hashing.hash("correct horse battery staple")
    assert hashing.verify(stored, "correct horse battery staple") is True
    assert hashing.verify(stored, "correct horse battery stapler") is False
    assert hashing.verify(stored, "") is False


@pytest.mark.parametrize(
    "password", ["anything at all", "", "not a real password, only for timing"]
)
def test_verify_for_an_unknown_user_is_false(password):
    # The last one is the dummy hash's own password: it must not let a no-hash user in.
    assert PasswordHashing(CHEAP).verify(None, password) is False


@pytest.mark.parametrize(
    "stored", ["", "plaintext", "$2b$12$abcdefghijklmnopqrstuu", "$argon2id$v=19$garbled"]
)
def test_verify_against_an_unusable_hash_is_false(stored):
    assert PasswordHashing(CHEAP).verify(stored, "plaintext") is False


def test_needs_rehash_only_when_parameters_differ():
    old = PasswordHashing(CHEAP).hash("a long enough password")
    slower = PasswordHashing(SecuritySettings(argon2_time_cost=2, argon2_memory_kib=1024))
    assert PasswordHashing(CHEAP).needs_rehash(old) is False
    assert slower.needs_rehash(old) is True
    assert PasswordHashing(CHEAP).needs_rehash("not an argon2 hash") is True


@pytest.mark.parametrize("settings_overrides", [STRONGER])
def test_sign_in_rehashes_a_hash_made_with_other_parameters(app, http):
    user = make_user(password=None)
    user.password_hash = PasswordHashing(CHEAP).hash(PASSWORD)
    db.session.commit()
    rp = make_client()

    sign_in(http, rp.client.client_id, user.email)

    stored = stored_hash_of(user)
    assert parameters_of(stored) == "m=2048,t=2,p=1"
    assert app.extensions["idp"].passwords.verify(stored, PASSWORD)
    assert not app.extensions["idp"].passwords.needs_rehash(stored)


def test_sign_in_keeps_a_hash_made_with_the_current_parameters(app, http):
    user = make_user()
    before = user.password_hash
    sign_in(http, make_client().client.client_id, user.email)
    assert stored_hash_of(user) == before


@pytest.mark.parametrize("settings_overrides", [STRONGER])
def test_failed_sign_in_leaves_the_old_hash_alone(app, http):
    user = make_user(password=None)
    user.password_hash = old = PasswordHashing(CHEAP).hash(PASSWORD)
    db.session.commit()
    page = follow_to_client(http, authorize(http, make_client().client.client_id))
    response = submit_form(http, page, email=user.email, password=PASSWORD + "x")
    assert response.status_code == 200
    assert "match an account" in response.get_data(as_text=True)
    assert stored_hash_of(user) == old


@pytest.mark.parametrize(
    ("chosen", "typed"),
    [
        ("caf\u00e9 au lait 2024", "cafe\u0301 au lait 2024"),  # composed, typed decomposed
        ("cafe\u0301 au lait 2024", "caf\u00e9 au lait 2024"),  # decomposed, typed composed
        ("\u00c5ngstr\u00f6m units!", "A\u030angstro\u0308m units!"),
        ("of\ufb01ce password", "office password"),  # NFKC folds the "fi" ligature
    ],
)
def test_password_signs_in_whatever_unicode_form_is_typed(app, http, chosen, typed):
    user = make_user(password=chosen)
    result = sign_in(http, make_client().client.client_id, user.email, password=typed)
    assert result.code


def test_normalisation_does_not_merge_different_passwords(app, http):
    user = make_user(password="caf\u00e9 au lait 2024")
    page = follow_to_client(http, authorize(http, make_client().client.client_id))
    response = submit_form(http, page, email=user.email, password="cafe au lait 2024")
    assert "match an account" in response.get_data(as_text=True)
