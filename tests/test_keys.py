"""Signing keys: made on first start, encrypted at rest, rotated without breaking tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import text

from idp import create_app
from idp.config import ConfigError
from idp.db import db
from idp.models import SigningKey
from idp.security.encryption import generate_encryption_key
from idp.storage import initialise
from tests.conftest import make_settings
from tests.databases import ON_POSTGRES
from tests.driver import exchange_code, sign_in
from tests.factories import make_client, make_user

PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi")


@contextmanager
def app_on(instance: Path, **sections: dict) -> Iterator[Flask]:
    """An app of its own on `instance`, in its app context, disposed afterwards."""
    application = create_app(make_settings(instance, **sections))
    with application.app_context():
        try:
            yield application
        finally:
            db.session.remove()
            db.engine.dispose()


def active_kids(app: Flask) -> dict[str, str]:
    """{alg: kid} of the keys that sign now."""
    rows = db.session.scalars(db.select(SigningKey).filter_by(retired_at=None))
    return {key.alg: key.kid for key in rows}


def published_kids(http) -> set[str]:
    return {key["kid"] for key in http.get("/jwks").json["keys"]}


def issue_id_token(http) -> str:
    user = make_user()
    rp = make_client()
    result = sign_in(http, rp.client.client_id, user.email, nonce="n")
    response = exchange_code(http, result.code, rp.client.client_id, rp.client_secret)
    assert response.status_code == 200, response.json
    return str(response.json["id_token"])


def kid_of(token: str, http) -> str:
    """The header kid of `token`, after checking its signature against GET /jwks."""
    keys = KeySet.import_key_set(http.get("/jwks").json)
    return str(jwt.decode(token, keys, algorithms=["RS256", "ES256"]).header["kid"])


def test_signing_keys_are_generated_on_first_start(tmp_path):
    with app_on(tmp_path / "fresh") as fresh:
        initialise(fresh)
        assert set(active_kids(fresh)) == {"RS256", "ES256"}
        jwks = fresh.test_client().get("/jwks").json["keys"]
    assert sorted(key["alg"] for key in jwks) == ["ES256", "RS256"]
    for key in jwks:
        assert key["use"] == "sig" and key["kid"]
        assert not set(PRIVATE_MEMBERS) & set(key), key


def test_starting_again_keeps_the_keys(tmp_path):
    with app_on(tmp_path / "fresh") as fresh:
        initialise(fresh)
        first = active_kids(fresh)
    with app_on(tmp_path / "fresh") as again:
        initialise(again)
        assert active_kids(again) == first
        assert db.session.query(SigningKey).count() == 2


def test_private_keys_are_encrypted_at_rest(app):
    rows = db.session.execute(text("SELECT * FROM signing_keys")).all()
    assert len(rows) == 2
    stored = " ".join(str(value) for row in rows for value in row)
    for member in PRIVATE_MEMBERS:
        assert f'"{member}":' not in stored
    if not ON_POSTGRES:  # SQLite: not in the file either, free pages and all
        database_file = Path(app.instance_path) / "idp.sqlite3"
        assert b'"d":' not in database_file.read_bytes()
    # ...yet the configured key recovers them.
    encryptor = app.extensions["idp"].encryptor
    for key in db.session.scalars(db.select(SigningKey)):
        private = json.loads(encryptor.decrypt(key.private_jwk_encrypted))
        assert private["kid"] == key.kid and "d" in private


def test_rotation_adds_a_key_per_algorithm(app, http):
    before = active_kids(app)
    new_kids = app.extensions["idp"].keys.rotate()
    after = active_kids(app)
    assert set(after) == {"RS256", "ES256"}
    assert sorted(after.values()) == sorted(new_kids)
    assert not set(before.values()) & set(after.values())
    assert published_kids(http) == set(before.values()) | set(after.values())


def test_rotation_of_one_algorithm_leaves_the_other_signing(app):
    before = active_kids(app)
    app.extensions["idp"].keys.rotate(("ES256",))
    after = active_kids(app)
    assert after["RS256"] == before["RS256"]
    assert after["ES256"] != before["ES256"]


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_new_id_tokens_are_signed_with_the_new_key(app, http, alg):
    user = make_user()
    rp = make_client()
    rp.client.id_token_signed_response_alg = alg
    db.session.commit()
    app.extensions["idp"].keys.rotate()
    new_kid = active_kids(app)[alg]
    result = sign_in(http, rp.client.client_id, user.email, nonce="n")
    response = exchange_code(http, result.code, rp.client.client_id, rp.client_secret)
    assert response.status_code == 200, response.json
    token = response.json["id_token"]
    assert kid_of(token, http) == new_kid
    assert jwt.decode(token, KeySet.import_key_set(http.get("/jwks").json)).header["alg"] == alg


def test_id_token_signed_before_rotation_still_verifies_right_after_it(app, http):
    old_kid = active_kids(app)["RS256"]
    token = issue_id_token(http)
    app.extensions["idp"].keys.rotate()
    assert old_kid in published_kids(http)
    assert kid_of(token, http) == old_kid


def test_old_key_is_published_until_id_token_lifetime_after_rotation(app, http, clock):
    keys = app.extensions["idp"].keys
    lifetime = app.extensions["idp"].settings.tokens.id_token_lifetime
    old = set(active_kids(app).values())
    keys.rotate()
    new = set(active_kids(app).values())

    clock.advance(lifetime - 5)
    keys.invalidate()
    assert published_kids(http) == old | new

    clock.advance(10)
    keys.invalidate()
    assert published_kids(http) == new


def test_wrong_encryption_key_is_a_config_error_naming_the_setting(app, tmp_path):
    # The template database's keys were encrypted with the test key, not this one.
    instance = Path(app.instance_path)
    wrong = {"encryption_keys": [generate_encryption_key()]}
    with app_on(instance, security=wrong) as other:
        with pytest.raises(ConfigError, match=r"^security\.encryption_keys:"):
            other.extensions["idp"].keys.signing_key("RS256")
        # ...and start-up says so at once, not at the first sign-in.
        with pytest.raises(ConfigError, match=r"^security\.encryption_keys:"):
            initialise(other)


def test_old_encryption_key_second_in_the_list_still_decrypts(app):
    instance = Path(app.instance_path)
    old_key = app.extensions["idp"].settings.security.encryption_keys[0]
    rotated = {"encryption_keys": [generate_encryption_key(), old_key]}
    with app_on(instance, security=rotated) as other:
        initialise(other)
        assert other.extensions["idp"].keys.signing_key("RS256").kid == active_kids(other)["RS256"]


def test_malformed_encryption_key_is_a_config_error_naming_the_setting(tmp_path):
    with pytest.raises(ConfigError, match=r"^security\.encryption_keys:"):
        create_app(make_settings(tmp_path, security={"encryption_keys": ["not-a-fernet-key"]}))
