"""Encryption key rotation without downtime: every stored secret (signing keys, TOTP seeds)
moves to the new key while nodes keep serving, then the old key can go."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask

from idp import create_app
from idp.clock import clock as idp_clock
from idp.config import ConfigError
from idp.db import db
from idp.mfa.totp import secret_of
from idp.models import MfaMethod, SigningKey
from idp.security.encryption import generate_encryption_key
from idp.security.key_rotation import reencrypt_stored_secrets
from tests.conftest import ENCRYPTION_KEY, make_settings
from tests.driver import answer_mfa, exchange_code, sign_in, totp_code
from tests.factories import make_client, make_mfa_method, make_user
from tests.test_cli import assert_ok, idp

OLD = ENCRYPTION_KEY  # what the template database was encrypted with
NEW = generate_encryption_key()


@contextmanager
def node(app: Flask, *keys: str) -> Iterator[Flask]:
    """Another node on the same database, configured with `keys`."""
    other = create_app(make_settings(Path(app.instance_path),
                                     security={"encryption_keys": list(keys)}))
    with other.app_context():
        try:
            yield other
        finally:
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def enrolled(app):
    """A person with an authenticator app, its seed encrypted under the old key."""
    user = make_user()
    method, secret = make_mfa_method(user, "totp")
    return user.email, method.id, secret


def signs_in_with_totp(app: Flask, email: str, secret: str) -> bool:
    """A person signs in with password and TOTP at `app`, and the RP gets an ID token."""
    idp_clock.offset += 30  # a fresh code: each is accepted once
    rp = make_client()
    http = app.test_client()
    result = sign_in(http, rp.client.client_id, email, acr_values="urn:portal-idp:acr:mfa",
                     mfa=lambda page: answer_mfa(http, page, totp_code(secret)))
    tokens = exchange_code(http, result.code, rp.client.client_id, rp.client_secret)
    return tokens.status_code == 200 and "id_token" in tokens.json


def test_rotation_moves_signing_keys_and_totp_seeds_to_the_new_key(app, enrolled, clock):
    email, method_id, secret = enrolled
    with node(app, NEW, OLD) as rotating:
        report = reencrypt_stored_secrets(rotating.extensions["idp"].encryptor)
        assert (report.reencrypted, report.current) == (3, 0)  # RS256, ES256, one seed
    with node(app, NEW) as new_only:
        method = db.session.get(MfaMethod, method_id)
        assert secret_of(method) == secret
        keys = new_only.extensions["idp"].keys
        assert keys.signing_key("RS256") and keys.signing_key("ES256")
        assert signs_in_with_totp(new_only, email, secret)


def test_running_the_rotation_again_finds_everything_current(app, enrolled):
    with node(app, NEW, OLD) as rotating:
        reencrypt_stored_secrets(rotating.extensions["idp"].encryptor)
        again = reencrypt_stored_secrets(rotating.extensions["idp"].encryptor)
    assert (again.reencrypted, again.current) == (0, 3)


def test_nodes_keep_serving_at_every_step_of_the_procedure(app, enrolled, clock):
    email, _, secret = enrolled
    # 1. The new key is added second everywhere: it decrypts, the old key still encrypts.
    with node(app, OLD, NEW) as step_one:
        assert signs_in_with_totp(step_one, email, secret)
    # 2. The new key goes first: new secrets use it, and nodes still at step 1 read them.
    with node(app, NEW, OLD) as step_two:
        step_two.extensions["idp"].keys.rotate()  # a signing key written under NEW
        assert signs_in_with_totp(step_two, email, secret)
    with node(app, OLD, NEW) as lagging:
        assert signs_in_with_totp(lagging, email, secret)
    # 3. `idp keys rotate-encryption`; 4. the old key is removed.
    with node(app, NEW, OLD) as step_three:
        reencrypt_stored_secrets(step_three.extensions["idp"].encryptor)
    with node(app, NEW) as step_four:
        assert signs_in_with_totp(step_four, email, secret)
        for key in db.session.scalars(db.select(SigningKey)):
            assert step_four.extensions["idp"].encryptor.is_current(key.private_jwk_encrypted)


def test_without_the_rotation_the_old_key_cannot_be_removed(app, enrolled):
    with node(app, NEW) as new_only, pytest.raises(ConfigError, match="encryption_keys"):
        new_only.extensions["idp"].keys.signing_key("RS256")


def test_a_secret_changed_during_the_rotation_is_kept(app, enrolled):
    _, method_id, _ = enrolled
    with node(app, NEW, OLD) as rotating:
        encryptor = rotating.extensions["idp"].encryptor
        method = db.session.get(MfaMethod, method_id)
        # The person re-enrols between the rotation's read and its write: the conditional
        # write leaves their new seed alone.
        replaced = encryptor.encrypt(b"JBSWY3DPEHPK3PXP")
        original_execute = db.session.execute
        swapped = []

        def execute_after_a_change(statement, *args, **kwargs):
            if not swapped and statement.is_dml and "mfa_methods" in str(statement):
                with rotating.app_context():  # another request, its own session
                    db.session.get(MfaMethod, method_id).secret_encrypted = replaced
                    db.session.commit()
                    db.session.remove()
                swapped.append(True)
            return original_execute(statement, *args, **kwargs)

        db.session.execute = execute_after_a_change  # type: ignore[method-assign]
        try:
            report = reencrypt_stored_secrets(encryptor)
        finally:
            db.session.execute = original_execute  # type: ignore[method-assign]
        assert swapped
        db.session.expire_all()
        assert db.session.get(MfaMethod, method.id).secret_encrypted == replaced
        assert report.reencrypted == 2  # the two signing keys only


def test_idp_keys_rotate_encryption_on_the_command_line(tmp_path):
    instance = tmp_path / "instance"
    assert_ok(idp(instance, "init", IDP_SECURITY__ENCRYPTION_KEYS=OLD))
    refused = idp(instance, "init", IDP_SECURITY__ENCRYPTION_KEYS=NEW)
    assert refused.returncode != 0 and "security.encryption_keys" in refused.stderr

    rotated = idp(instance, "keys", "rotate-encryption",
                  IDP_SECURITY__ENCRYPTION_KEYS=f"{NEW},{OLD}")
    assert_ok(rotated)
    assert "re-encrypted 2 stored secret(s)" in rotated.stdout
    assert "remove them" in rotated.stdout
    # The old key can go now: the IdP starts (and decrypts its keys) with the new one alone.
    assert_ok(idp(instance, "init", IDP_SECURITY__ENCRYPTION_KEYS=NEW))
