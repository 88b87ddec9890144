"""The `idp` console script, run as a real subprocess against a private instance folder."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from idp.app import create_app
from idp.config import SecuritySettings, load_settings
from idp.db import db
from idp.demo import DEMO_EMAIL, DEMO_PASSWORD, LEGACY_PASSWORD, LEGACY_USERNAME, PORTALS
from idp.security.encryption import generate_encryption_key
from idp.security.passwords import PasswordHashing

CONSOLE_SCRIPT = Path(sys.executable).with_name("idp")
REDIRECT_URI = "https://rp.example.org/callback"


def cli_environment(instance: Path, **extra: str) -> dict[str, str]:
    """The parent's environment without any IDP_* variable, plus a private instance."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    environ.update(
        IDP_SERVER__INSTANCE_PATH=str(instance),
        IDP_SECURITY__ARGON2_TIME_COST="1",
        IDP_SECURITY__ARGON2_MEMORY_KIB="1024",
    )
    environ.update(extra)
    return environ


def idp(instance: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `idp ARGS...` with IDP_CONFIG unset and `env` added to the environment."""
    command = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "idp"]
    return subprocess.run(
        [*command, *args],
        env=cli_environment(instance, **env),
        cwd=next(p for p in instance.parents if p.is_dir()),
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr


def assert_one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("idp: error:"), result.stderr
    assert fragment in lines[0], lines[0]
    assert result.stdout == ""


def query(instance: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(instance / "idp.sqlite3")) as connection:
        return connection.execute(sql, params).fetchall()


def instance_bytes(instance: Path) -> bytes:
    """Every byte the instance folder holds (the database, its WAL, the dev secrets)."""
    return b"".join(p.read_bytes() for p in sorted(instance.iterdir()) if p.is_file())


@pytest.fixture(scope="module")
def initialised_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `idp init` for the module; each test works on a copy."""
    instance = tmp_path_factory.mktemp("cli-template") / "instance"
    assert_ok(idp(instance, "init"))
    return instance


@pytest.fixture
def instance(tmp_path: Path, initialised_template: Path) -> Path:
    """An initialised instance folder (database, keys, dev secrets) private to the test."""
    copy = tmp_path / "instance"
    shutil.copytree(initialised_template, copy)
    return copy


@pytest.fixture
def fresh_instance(tmp_path: Path) -> Path:
    return tmp_path / "instance"


# -- init -----------------------------------------------------------------------------------


def test_init_creates_the_database_and_signing_keys_and_is_idempotent(fresh_instance):
    first = idp(fresh_instance, "init")
    assert_ok(first)
    assert "database ready" in first.stdout
    assert (fresh_instance / "idp.sqlite3").is_file()
    assert (fresh_instance / "dev-secrets.json").is_file()
    keys = query(fresh_instance, "SELECT kid, alg FROM signing_keys WHERE retired_at IS NULL")
    assert sorted(alg for _, alg in keys) == ["ES256", "RS256"]
    version = query(fresh_instance, "SELECT version_num FROM alembic_version")

    assert_ok(idp(fresh_instance, "init"))
    assert query(fresh_instance, "SELECT kid, alg FROM signing_keys") == keys
    assert query(fresh_instance, "SELECT version_num FROM alembic_version") == version


DEMO_TABLES = {
    "portals": "slug, name, logo_url, primary_color, home_url, policy",
    "clients": "client_id, client_secret_hash, redirect_uris, post_logout_redirect_uris, "
               "backchannel_logout_uri, portal_id, first_party",
    "users": "sub, email, password_hash, email_verified",
    "contacts": "portal_id, external_id, email, name, user_id",
    "legacy_accounts": "portal_id, legacy_username, email, contact_id, password_hash",
    "invitations": "portal_id, email, contact_external_id",
    "outbox_messages": "recipient, subject",
}


def demo_rows(instance: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {table: query(instance, f"SELECT {columns} FROM {table} ORDER BY 1, 2")
            for table, columns in DEMO_TABLES.items()}


def test_init_demo_seeds_the_walkthrough_once(instance):
    first = idp(instance, "init", "--demo")
    assert_ok(first)
    for portal in PORTALS:
        assert f"client {portal.client_id} / {portal.client_secret}" in first.stdout
    assert f"{DEMO_EMAIL} / {DEMO_PASSWORD}" in first.stdout
    assert f"{LEGACY_USERNAME} / {LEGACY_PASSWORD}" in first.stdout
    seeded = demo_rows(instance)
    assert_ok(idp(instance, "init", "--demo"))
    assert demo_rows(instance) == seeded  # idempotent: nothing changes the second time

    users = query(instance, "SELECT password_hash, email_verified FROM users WHERE email = ?",
                  DEMO_EMAIL)
    assert len(users) == 1 and users[0][1] == 1
    hashing = PasswordHashing(SecuritySettings(argon2_time_cost=1, argon2_memory_kib=1024))
    assert hashing.verify(users[0][0], DEMO_PASSWORD)
    for portal in PORTALS:
        [(secret_hash, redirect_uris, first_party)] = query(
            instance, "SELECT client_secret_hash, redirect_uris, first_party FROM clients "
                      "WHERE client_id = ?", portal.client_id)
        assert secret_hash == hashlib.sha256(portal.client_secret.encode()).hexdigest()
        assert json.loads(redirect_uris) == [f"http://127.0.0.1:{portal.port}/callback"]
        assert first_party == 1
    # The legacy account keeps the real bcrypt hash of its old system.
    [(legacy_hash,)] = query(instance, "SELECT password_hash FROM legacy_accounts "
                                       "WHERE legacy_username = ?", LEGACY_USERNAME)
    assert bcrypt.checkpw(LEGACY_PASSWORD.encode(), legacy_hash.encode())


# -- clients --------------------------------------------------------------------------------


def test_clients_create_prints_id_and_secret_as_json_and_stores_only_a_hash(instance):
    result = idp(instance, "clients", "create", "--name", "MLS Portal",
                 "--redirect-uri", REDIRECT_URI, "--json")
    assert_ok(result)
    created = json.loads(result.stdout)
    assert set(created) == {"client_id", "client_secret"}
    secret = created["client_secret"]
    assert isinstance(secret, str) and len(secret) >= 32
    assert secret.encode() not in instance_bytes(instance)
    rows = query(instance, "SELECT name, client_secret_hash, redirect_uris, "
                           "token_endpoint_auth_method FROM clients WHERE client_id = ?",
                 created["client_id"])
    assert rows == [("MLS Portal", hashlib.sha256(secret.encode()).hexdigest(),
                     json.dumps([REDIRECT_URI]), "client_secret_basic")]


def test_public_client_has_a_null_secret(instance):
    result = idp(instance, "clients", "create", "--name", "Mobile App", "--public",
                 "--redirect-uri", "org.example.app:/callback", "--json")
    assert_ok(result)
    created = json.loads(result.stdout)
    assert created["client_secret"] is None
    assert query(instance, "SELECT client_secret_hash, token_endpoint_auth_method FROM clients "
                           "WHERE client_id = ?", created["client_id"]) == [(None, "none")]


def test_portal_created_on_the_command_line_can_own_clients(instance):
    assert_ok(idp(instance, "portals", "create", "--slug", "mls", "--name", "The MLS"))
    result = idp(instance, "clients", "create", "--name", "MLS", "--portal", "mls",
                 "--redirect-uri", REDIRECT_URI, "--json")
    assert_ok(result)
    client_id = json.loads(result.stdout)["client_id"]
    assert query(instance, "SELECT portals.slug, portals.name FROM clients JOIN portals "
                           "ON portals.id = clients.portal_id WHERE clients.client_id = ?",
                 client_id) == [("mls", "The MLS")]
    assert_one_line_error(
        idp(instance, "portals", "create", "--slug", "mls", "--name", "Again"), "mls"
    )


# -- users ----------------------------------------------------------------------------------


def test_users_create_stores_an_argon2id_hash_and_refuses_a_duplicate(instance):
    password = "a password I chose myself"
    result = idp(instance, "users", "create", "--email", "Pat@Example.org",
                 "--password", password, "--name", "Pat Doe")
    assert_ok(result)
    assert "pat@example.org" in result.stdout
    rows = query(instance, "SELECT name, password_hash FROM users WHERE email = ?",
                 "pat@example.org")
    assert len(rows) == 1 and rows[0][0] == "Pat Doe"
    assert rows[0][1].startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert password.encode() not in instance_bytes(instance)

    duplicate = idp(instance, "users", "create", "--email", "pat@example.org",
                    "--password", "another long password")
    assert_one_line_error(duplicate, "already exists")
    assert query(instance, "SELECT count(*) FROM users") == [(1,)]


# -- keys -----------------------------------------------------------------------------------


def published_kids(instance: Path) -> set[str]:
    """The kids of GET /jwks, served by an app built on the same instance folder."""
    environ = cli_environment(instance)
    app = create_app(load_settings(environ={k: v for k, v in environ.items()
                                            if k.startswith("IDP_")}))
    with app.app_context():
        try:
            return {key["kid"] for key in app.test_client().get("/jwks").json["keys"]}
        finally:
            db.session.remove()
            db.engine.dispose()


def test_keys_rotate_publishes_new_keys_beside_the_old(instance):
    before = published_kids(instance)
    result = idp(instance, "keys", "rotate")
    assert_ok(result)
    after = published_kids(instance)
    assert before < after and len(after) == len(before) + 2
    assert all(kid in result.stdout for kid in after - before)


# -- bad input: non-zero exit, one line on stderr, no traceback ----------------------------

BAD_INPUT = [
    pytest.param(["clients", "create", "--name", "N", "--redirect-uri", "http://evil.example/cb"],
                 {}, "redirect_uri", id="http-redirect-uri"),
    pytest.param(["clients", "create", "--name", "N", "--redirect-uri",
                  "https://rp.example.org/cb#done"], {}, "fragment", id="fragment"),
    pytest.param(["clients", "create", "--name", "N", "--redirect-uri",
                  "https://*.example.org/cb"], {}, "wildcard", id="wildcard"),
    pytest.param(["clients", "create", "--name", "N"], {}, "redirect_uri",
                 id="no-redirect-uri"),
    pytest.param(["clients", "create", "--redirect-uri", REDIRECT_URI], {}, "--name",
                 id="missing-name"),
    pytest.param(["clients", "create", "--name", "N", "--redirect-uri", REDIRECT_URI,
                  "--portal", "no-such-portal"], {}, "no-such-portal", id="unknown-portal"),
    pytest.param(["frobnicate"], {}, "frobnicate", id="unknown-command"),
    pytest.param(["clients", "delete"], {}, "delete", id="unknown-subcommand"),
    pytest.param(["keys", "rotate", "--alg", "HS256"], {}, "HS256", id="unsupported-alg"),
    pytest.param(["serve", "--port", "eighty"], {}, "eighty", id="non-numeric-port"),
    pytest.param(["users", "create", "--email", "not-an-email", "--password", "long enough pw"],
                 {}, "email", id="invalid-email"),
    pytest.param(["users", "create", "--email", "a@example.org", "--password", "short"],
                 {}, "password", id="short-password"),
    pytest.param(["portals", "create", "--slug", "Not A Slug", "--name", "N"], {}, "slug",
                 id="invalid-slug"),
    pytest.param(["init"], {"IDP_TOKENS__CODE_LIFETIME": "abc"}, "tokens.code_lifetime",
                 id="env-not-an-int"),
    pytest.param(["init"], {"IDP_SERVER__ISSUER": "http://idp.example.org"}, "server.issuer",
                 id="env-http-issuer"),
    pytest.param(["init"], {"IDP_SERVER__NOPE": "1"}, "server.nope", id="env-unknown-key"),
    pytest.param(["init"], {"IDP_CONFIG": "/nonexistent/idp.toml"}, "IDP_CONFIG",
                 id="missing-config-file"),
    pytest.param(["init"], {"IDP_DATABASE__URL": "nosuchdb://x"}, "database.url",
                 id="unknown-database-dialect"),
    pytest.param(["init"], {"IDP_SECURITY__ENCRYPTION_KEYS": generate_encryption_key()},
                 "security.encryption_keys", id="wrong-encryption-key"),
]


@pytest.mark.parametrize(("args", "env", "fragment"), BAD_INPUT)
def test_bad_input_exits_non_zero_with_one_line(instance, args, env, fragment):
    assert_one_line_error(idp(instance, *args, **env), fragment)


def test_invalid_toml_config_file_is_one_line(instance):
    config = instance.parent / "idp.toml"
    config.write_text("[server\nport = 1\n", encoding="utf-8")
    assert_one_line_error(idp(instance, "init", IDP_CONFIG=str(config)), "not valid TOML")


def test_instance_folder_that_cannot_be_created_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert_one_line_error(idp(blocker / "instance", "init"), str(blocker))


def test_commands_before_init_say_to_run_init(fresh_instance):
    result = idp(fresh_instance, "clients", "create", "--name", "N", "--redirect-uri",
                 REDIRECT_URI, "--json")
    assert_one_line_error(result, "idp init")

