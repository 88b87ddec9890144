"""Settings: config.example.toml documents the defaults, env overrides win, errors name the key."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from idp.config import SECTIONS, ConfigError, Settings, load_settings
from idp.security.encryption import generate_encryption_key

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"
FERNET_KEY = generate_encryption_key()


def load(
    tmp_path: Path, toml: str | None = None, env: dict[str, str] | None = None
) -> Settings:
    """Settings from a TOML text (written to a file named by IDP_CONFIG) and env variables."""
    environ = dict(env or {})
    if toml is not None:
        path = tmp_path / "config.toml"
        path.write_text(toml, encoding="utf-8")
        environ["IDP_CONFIG"] = str(path)
    return load_settings(environ=environ)


def assert_one_line_error(error: ConfigError, key: str) -> None:
    message = str(error)
    assert message.startswith(f"{key}:"), message
    assert "\n" not in message and "\r" not in message, message


# -- the example file -----------------------------------------------------------------------


def test_example_file_parses_to_exactly_the_builtin_defaults():
    settings = load_settings(path=EXAMPLE, environ={})
    assert settings == Settings()


def test_example_file_documents_every_setting_and_nothing_else():
    example = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    documented = {(section, key) for section, values in example.items() for key in values}
    fields = {
        (section, f.name) for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)
    }
    assert documented == fields


def test_every_example_key_has_a_comment_or_a_commented_neighbour():
    # "documents every key": each key is preceded by a comment somewhere in its block.
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#"):
            block = []
            for previous in reversed(lines[:number]):
                if not previous.strip() or previous.startswith("["):
                    break
                block.append(previous)
            assert any(p.lstrip().startswith("#") for p in block), f"undocumented: {line}"


def test_no_file_and_no_environment_gives_the_defaults():
    assert load_settings(environ={}) == Settings()


# -- environment overrides ------------------------------------------------------------------


FILE_WITH_EVERY_KIND = """
[server]
issuer = "https://idp.example.org"
port = 6000
[database]
echo = false
[security]
encryption_keys = ["file-key"]
[session]
backchannel_timeout = 1.5
"""


@pytest.mark.parametrize(
    ("variable", "value", "section", "key", "expected"),
    [
        ("IDP_SERVER__ISSUER", "https://login.example.com", "server", "issuer",
         "https://login.example.com"),
        ("IDP_SERVER__PORT", "7000", "server", "port", 7000),
        ("IDP_DATABASE__ECHO", "true", "database", "echo", True),
        ("IDP_DATABASE__ECHO", "1", "database", "echo", True),
        ("IDP_DATABASE__ECHO", "no", "database", "echo", False),
        ("IDP_SESSION__BACKCHANNEL_TIMEOUT", "0.25", "session", "backchannel_timeout", 0.25),
        ("IDP_SECURITY__ENCRYPTION_KEYS", "k1, k2,,k3", "security", "encryption_keys",
         ("k1", "k2", "k3")),
        ("IDP_DATABASE__URL", "postgresql+psycopg://u:p@db/idp", "database", "url",
         "postgresql+psycopg://u:p@db/idp"),
    ],
)
def test_environment_variable_overrides_the_file(
    tmp_path, variable, value, section, key, expected
):
    settings = load(tmp_path, FILE_WITH_EVERY_KIND, {variable: value})
    assert getattr(getattr(settings, section), key) == expected


def test_file_values_hold_where_no_variable_overrides(tmp_path):
    settings = load(tmp_path, FILE_WITH_EVERY_KIND, {"IDP_SERVER__PORT": "7000"})
    assert settings.server.issuer == "https://idp.example.org"
    assert settings.security.encryption_keys == ("file-key",)
    assert settings.session.backchannel_timeout == 1.5
    assert settings.tokens == Settings().tokens


def test_environment_overrides_apply_without_a_file(monkeypatch, tmp_path):
    monkeypatch.delenv("IDP_CONFIG", raising=False)
    monkeypatch.setenv("IDP_TOKENS__CODE_LIFETIME", "30")
    monkeypatch.setenv("IDP_SERVER__INSTANCE_PATH", str(tmp_path))
    settings = load_settings()
    assert settings.tokens.code_lifetime == 30
    assert settings.instance_dir == tmp_path.resolve()


def test_variables_without_a_section_separator_are_not_settings(tmp_path):
    settings = load(tmp_path, env={"IDP_CONFIG_DIR": "x", "IDP_REQUIRE_BROWSER": "1"})
    assert settings == Settings()


def test_production_with_its_secrets_is_accepted(tmp_path):
    settings = load(tmp_path, f"""
[server]
issuer = "https://idp.example.org"
environment = "production"
secret_key = "a long random session secret"
[security]
encryption_keys = ["{FERNET_KEY}"]
""")
    assert not settings.is_development and settings.uses_https


@pytest.mark.parametrize(
    "issuer", ["http://127.0.0.1:5000", "http://localhost:8080", "http://[::1]:5000",
               "https://idp.example.org", "https://example.org/tenants/a"],
)
def test_issuer_may_be_https_or_loopback_http(tmp_path, issuer):
    assert load(tmp_path, env={"IDP_SERVER__ISSUER": issuer}).server.issuer == issuer


# -- invalid values -------------------------------------------------------------------------

PRODUCTION = '[server]\nenvironment = "production"\nissuer = "https://idp.example.org"\n'

INVALID_FILES = [
    # wrong types
    ("server.port", '[server]\nport = "5000"'),
    ("server.port", "[server]\nport = 5000.5"),
    ("server.port", "[server]\nport = true"),
    ("server.issuer", "[server]\nissuer = 5"),
    ("database.echo", '[database]\necho = "yes"'),
    ("database.echo", "[database]\necho = 1"),
    ("tokens.code_lifetime", "[tokens]\ncode_lifetime = true"),
    ("security.encryption_keys", '[security]\nencryption_keys = "one-key"'),
    ("security.encryption_keys", "[security]\nencryption_keys = [1, 2]"),
    ("session.backchannel_timeout", '[session]\nbackchannel_timeout = "3"'),
    ("session.backchannel_timeout", "[session]\nbackchannel_timeout = false"),
    ("session.backchannel_timeout", "[session]\nbackchannel_timeout = [3]"),
    # unknown keys and sections
    ("server.issuer_url", '[server]\nissuer_url = "https://idp.example.org"'),
    ("servers", "[servers]\nport = 5000"),
    ("port", "port = 5000"),
    ("server", 'server = "https://idp.example.org"'),
    # the issuer (OIDC Discovery 2 / Core 3.1.2.1)
    ("server.issuer", '[server]\nissuer = "not a url"'),
    ("server.issuer", '[server]\nissuer = "idp.example.org"'),
    ("server.issuer", '[server]\nissuer = "localhost:5000"'),
    ("server.issuer", '[server]\nissuer = "ftp://idp.example.org"'),
    ("server.issuer", '[server]\nissuer = "https://"'),
    ("server.issuer", '[server]\nissuer = "https://idp.example.org/"'),
    ("server.issuer", '[server]\nissuer = "https://idp.example.org/tenant/"'),
    ("server.issuer", '[server]\nissuer = "http://127.0.0.1:5000/"'),
    ("server.issuer", '[server]\nissuer = "https://idp.example.org?tenant=a"'),
    ("server.issuer", '[server]\nissuer = "https://idp.example.org#top"'),
    ("server.issuer", '[server]\nissuer = "http://idp.example.org"'),
    ("server.issuer", '[server]\nissuer = "http://10.0.0.5:5000"'),
    # production needs its secrets
    ("server.secret_key", PRODUCTION + f'[security]\nencryption_keys = ["{FERNET_KEY}"]'),
    ("security.encryption_keys", PRODUCTION + 'secret_key = "s3cret"'),
    ("server.environment", '[server]\nenvironment = "staging"'),
    # tokens
    ("tokens.signing_alg", '[tokens]\nsigning_alg = "HS256"'),
    ("tokens.signing_alg", '[tokens]\nsigning_alg = "none"'),
    ("tokens.signing_alg", '[tokens]\nsigning_alg = "rs256"'),
    ("tokens.code_lifetime", "[tokens]\ncode_lifetime = 601"),
    ("tokens.code_lifetime", "[tokens]\ncode_lifetime = 0"),
    ("tokens.access_token_lifetime", "[tokens]\naccess_token_lifetime = -1"),
    ("tokens.id_token_lifetime", "[tokens]\nid_token_lifetime = 0"),
    # ranges
    ("server.port", "[server]\nport = 0"),
    ("server.port", "[server]\nport = 65536"),
    ("security.argon2_time_cost", "[security]\nargon2_time_cost = 0"),
    ("security.argon2_memory_kib", "[security]\nargon2_memory_kib = 4"),
    ("security.argon2_parallelism", "[security]\nargon2_parallelism = 0"),
    ("security.argon2_memory_kib",
     "[security]\nargon2_memory_kib = 8\nargon2_parallelism = 2"),
    # operations
    ("server.trusted_proxy_hops", "[server]\ntrusted_proxy_hops = -1"),
    ("server.trusted_proxy_hops", "[server]\ntrusted_proxy_hops = 11"),
    ("server.log_format", '[server]\nlog_format = "xml"'),
    ("server.log_level", '[server]\nlog_level = "LOUD"'),
    ("security.throttle_redis_url", '[security]\nthrottle_redis_url = "http://cache:6379"'),
]


@pytest.mark.parametrize(("key", "toml"), INVALID_FILES)
def test_invalid_file_value_is_refused_naming_the_key(tmp_path, key, toml):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, toml)
    assert_one_line_error(caught.value, key)


INVALID_VARIABLES = [
    ("server.port", {"IDP_SERVER__PORT": "abc"}),
    ("server.port", {"IDP_SERVER__PORT": "50.5"}),
    ("tokens.code_lifetime", {"IDP_TOKENS__CODE_LIFETIME": "abc"}),
    ("tokens.code_lifetime", {"IDP_TOKENS__CODE_LIFETIME": "601"}),
    ("database.echo", {"IDP_DATABASE__ECHO": "maybe"}),
    ("session.backchannel_timeout", {"IDP_SESSION__BACKCHANNEL_TIMEOUT": "soon"}),
    ("server.nope", {"IDP_SERVER__NOPE": "1"}),
    ("nope", {"IDP_NOPE__PORT": "1"}),
    ("server.issuer", {"IDP_SERVER__ISSUER": "https://idp.example.org/"}),
    ("server.issuer", {"IDP_SERVER__ISSUER": "http://idp.example.org"}),
    ("server.issuer", {"IDP_SERVER__ISSUER": "not a url"}),
    ("tokens.signing_alg", {"IDP_TOKENS__SIGNING_ALG": "PS256"}),
    ("server.secret_key", {"IDP_SERVER__ENVIRONMENT": "production",
                           "IDP_SERVER__ISSUER": "https://idp.example.org",
                           "IDP_SECURITY__ENCRYPTION_KEYS": FERNET_KEY}),
    ("security.encryption_keys", {"IDP_SERVER__ENVIRONMENT": "production",
                                  "IDP_SERVER__ISSUER": "https://idp.example.org",
                                  "IDP_SERVER__SECRET_KEY": "s3cret"}),
]


@pytest.mark.parametrize(("key", "env"), INVALID_VARIABLES)
def test_invalid_environment_value_is_refused_naming_the_key(tmp_path, key, env):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, env=env)
    assert_one_line_error(caught.value, key)


def test_invalid_variable_is_refused_even_when_the_file_is_valid(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "[tokens]\ncode_lifetime = 30\n", {"IDP_TOKENS__CODE_LIFETIME": "abc"})
    assert_one_line_error(caught.value, "tokens.code_lifetime")
    assert "'abc'" in str(caught.value)


def test_explicit_overrides_are_validated_too():
    with pytest.raises(ConfigError) as caught:
        load_settings(path="", environ={}, overrides={"tokens": {"code_lifetime": 900}})
    assert_one_line_error(caught.value, "tokens.code_lifetime")


# -- the file itself ------------------------------------------------------------------------


def test_missing_config_file_is_one_clear_line(tmp_path):
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"IDP_CONFIG": str(missing)})
    assert_one_line_error(caught.value, "IDP_CONFIG")
    assert str(missing) in str(caught.value) and "not found" in str(caught.value)


@pytest.mark.parametrize(
    "text",
    ["[server\nport = 5000", "[server]\nport = ", "[server]\nissuer = 'a\nb'",
     "[server]\nport = 1\nport = 2"],
)
def test_invalid_toml_is_one_clear_line(tmp_path, text):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert_one_line_error(caught.value, "IDP_CONFIG")
    assert "not valid TOML" in str(caught.value)


def test_config_path_that_is_a_directory_is_one_clear_line(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"IDP_CONFIG": str(tmp_path)})
    assert_one_line_error(caught.value, "IDP_CONFIG")
    assert str(tmp_path) in str(caught.value)


def test_config_file_that_is_not_utf8_is_one_clear_line(tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes(b"[server]\nissuer = \"\xff\xfe\"\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"IDP_CONFIG": str(path)})
    assert_one_line_error(caught.value, "IDP_CONFIG")


def test_settings_are_frozen():
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.server.port = 1  # type: ignore[misc]


# -- secrets from files (IDP_<SECTION>__<KEY>_FILE) ------------------------------------------


def test_a_secret_can_come_from_a_file_named_by_a_FILE_variable(tmp_path):
    (tmp_path / "secret_key").write_text("from-a-file\n", encoding="utf-8")
    (tmp_path / "smtp_password").write_text("  mail-pass  \n", encoding="utf-8")
    settings = load(tmp_path, env={
        "IDP_SERVER__SECRET_KEY_FILE": str(tmp_path / "secret_key"),
        "IDP_MAIL__SMTP_PASSWORD_FILE": str(tmp_path / "smtp_password"),
    })
    assert settings.server.secret_key == "from-a-file"
    assert settings.mail.smtp_password == "mail-pass"


def test_a_list_from_a_file_takes_one_item_a_line(tmp_path):
    new, old = generate_encryption_key(), generate_encryption_key()
    (tmp_path / "keys").write_text(f"{new}\n{old}\n", encoding="utf-8")
    settings = load(tmp_path, env={"IDP_SECURITY__ENCRYPTION_KEYS_FILE": str(tmp_path / "keys")})
    assert settings.security.encryption_keys == (new, old)


def test_a_FILE_variable_overrides_the_config_file(tmp_path):
    (tmp_path / "secret_key").write_text("from-a-file", encoding="utf-8")
    settings = load(tmp_path, '[server]\nsecret_key = "in-toml"\n',
                    {"IDP_SERVER__SECRET_KEY_FILE": str(tmp_path / "secret_key")})
    assert settings.server.secret_key == "from-a-file"


def test_a_missing_secret_file_is_one_line_naming_the_variable(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, env={"IDP_SERVER__SECRET_KEY_FILE": str(tmp_path / "absent")})
    assert_one_line_error(caught.value, "IDP_SERVER__SECRET_KEY_FILE")
    assert str(tmp_path / "absent") in str(caught.value)


def test_a_key_set_both_directly_and_from_a_file_is_refused(tmp_path):
    (tmp_path / "secret_key").write_text("from-a-file", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, env={"IDP_SERVER__SECRET_KEY": "direct",
                            "IDP_SERVER__SECRET_KEY_FILE": str(tmp_path / "secret_key")})
    assert_one_line_error(caught.value, "server.secret_key")


def test_a_FILE_variable_for_an_unknown_key_is_an_unknown_setting(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, env={"IDP_SERVER__NOPE_FILE": str(tmp_path)})
    assert_one_line_error(caught.value, "server.nope_file")
