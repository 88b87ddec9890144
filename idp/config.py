"""Typed, frozen settings read from TOML and overridden by IDP_<SECTION>__<KEY> variables.

Every key has a default here and a comment in config.example.toml; a test keeps the two
in step. Errors name the key in one line (`ConfigError`), so the CLI can print it and exit.
"""

from __future__ import annotations

import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ENV_PREFIX = "IDP_"


class ConfigError(Exception):
    """A missing or invalid setting; the message names the key."""


@dataclass(frozen=True)
class ServerSettings:
    issuer: str = "http://127.0.0.1:5000"
    environment: str = "development"
    secret_key: str = ""
    instance_path: str = "instance"
    host: str = "127.0.0.1"
    port: int = 5000
    trusted_proxy_hops: int = 0
    log_format: str = "json"
    log_level: str = "INFO"


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = ""
    echo: bool = False


@dataclass(frozen=True)
class SecuritySettings:
    encryption_keys: tuple[str, ...] = ()
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    throttle_redis_url: str = ""


@dataclass(frozen=True)
class TokenSettings:
    signing_alg: str = "RS256"
    code_lifetime: int = 60
    access_token_lifetime: int = 3600
    id_token_lifetime: int = 3600
    refresh_token_lifetime: int = 2592000
    client_credentials_lifetime: int = 3600


@dataclass(frozen=True)
class SessionSettings:
    backchannel_timeout: float = 3.0


@dataclass(frozen=True)
class MailSettings:
    backend: str = "dev"
    from_address: str = "Portal IdP <no-reply@localhost>"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_security: str = "auto"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_timeout: float = 10.0
    max_attempts: int = 10


@dataclass(frozen=True)
class SmsSettings:
    backend: str = "dev"
    http_url: str = ""
    http_token: str = ""
    http_sender: str = ""
    http_timeout: float = 10.0


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    tokens: TokenSettings = field(default_factory=TokenSettings)
    session: SessionSettings = field(default_factory=SessionSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    sms: SmsSettings = field(default_factory=SmsSettings)

    @property
    def is_development(self) -> bool:
        return self.server.environment == "development"

    @property
    def instance_dir(self) -> Path:
        return Path(self.server.instance_path).resolve()

    @property
    def database_url(self) -> str:
        """The configured URL, or SQLite under the instance folder."""
        return self.database.url or f"sqlite:///{self.instance_dir / 'idp.sqlite3'}"

    @property
    def uses_https(self) -> bool:
        return self.server.issuer.startswith("https://")


SECTIONS: dict[str, type] = typing.get_type_hints(Settings)


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: typing.Mapping[str, str] | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> Settings:
    """Read the TOML file (IDP_CONFIG when `path` is None), apply env and explicit overrides.

    `IDP_<SECTION>__<KEY>_FILE=/path` reads the key's value from a file (Docker and
    Kubernetes secrets), e.g. IDP_SERVER__SECRET_KEY_FILE; lists take one item a line.
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, dict[str, Any]] = {}
    path = path if path is not None else environ.get("IDP_CONFIG")
    if path:
        raw = _read_toml(Path(path))
    from_files: dict[tuple[str, str], str] = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX) and "__" in key:
            section, _, name = key[len(ENV_PREFIX):].lower().partition("__")
            if name.endswith("_file") and _is_setting(section, name[:-5]) \
                    and not _is_setting(section, name):
                name = name[:-5]
                from_files[section, name] = key
                value = _read_secret_file(key, value)
                if typing.get_origin(typing.get_type_hints(SECTIONS[section])[name]) is tuple:
                    value = ",".join(value.splitlines())  # one list item a line
            raw.setdefault(section, {})[name] = _EnvValue(value)
    for section, name in from_files:
        plain = f"{ENV_PREFIX}{section.upper()}__{name.upper()}"
        if plain in environ:
            raise ConfigError(f"{section}.{name}: set by both {plain} and {plain}_FILE")
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    settings = _build(raw)
    _validate(settings)
    return settings


class _EnvValue(str):
    """A raw string from the environment, converted to the field's type on build."""


def _is_setting(section: str, name: str) -> bool:
    cls = SECTIONS.get(section)
    return cls is not None and name in typing.get_type_hints(cls)


def _read_secret_file(variable: str, path: str) -> str:
    """The file's text without surrounding whitespace (the trailing newline of `echo`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ConfigError(f"{variable}: cannot read {path}: {reason}") from None
    return text.strip()


def _read_toml(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"IDP_CONFIG: file not found: {path}") from None
    except OSError as exc:
        # A directory or an unreadable file: still one line for the CLI, not a traceback.
        raise ConfigError(f"IDP_CONFIG: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"IDP_CONFIG: {path} is not valid TOML: not UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"IDP_CONFIG: {path} is not valid TOML: {exc}") from None
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{section}: expected a [{section}] table")
    return data


def _build(raw: dict[str, dict[str, Any]]) -> Settings:
    sections: dict[str, Any] = {}
    for section, values in raw.items():
        if section not in SECTIONS:
            raise ConfigError(f"{section}: unknown section")
        cls = SECTIONS[section]
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for name, value in values.items():
            if name not in hints:
                raise ConfigError(f"{section}.{name}: unknown setting")
            kwargs[name] = _coerce(f"{section}.{name}", hints[name], value)
        sections[section] = cls(**kwargs)
    return Settings(**sections)


def _coerce(key: str, kind: Any, value: Any) -> Any:
    from_env = isinstance(value, _EnvValue)
    try:
        if kind is bool:
            if from_env:
                lowered = value.strip().lower()
                if lowered not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError
                return lowered in ("1", "true", "yes")
            if not isinstance(value, bool):
                raise ValueError
            return value
        # TOML values must already have the right type: int("5000") or int(5000.5) would
        # silently accept a string or truncate a float. Only env strings are converted.
        if kind is int:
            if isinstance(value, bool) or not (from_env or isinstance(value, int)):
                raise ValueError
            return int(value)
        if kind is float:
            if isinstance(value, bool) or not (from_env or isinstance(value, int | float)):
                raise ValueError
            return float(value)
        if kind is str:
            if not isinstance(value, str):
                raise ValueError
            return str(value)
        if typing.get_origin(kind) is tuple:
            if from_env:
                return tuple(item.strip() for item in value.split(",") if item.strip())
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError
            return tuple(value)
    except (TypeError, ValueError):
        pass
    else:
        raise ConfigError(f"{key}: unsupported setting type")
    expected = getattr(kind, "__name__", str(kind)).replace("tuple", "list of strings")
    raise ConfigError(f"{key}: expected {expected}, got {value!r}")


def _validate(settings: Settings) -> None:
    issuer = urlsplit(settings.server.issuer)
    if issuer.scheme not in ("http", "https") or not issuer.netloc:
        raise ConfigError("server.issuer: must be an absolute http(s) URL")
    if issuer.query or issuer.fragment or settings.server.issuer.endswith("/"):
        raise ConfigError("server.issuer: no query, fragment or trailing slash (OIDC Discovery 2)")
    if issuer.scheme == "http" and issuer.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError("server.issuer: must use https except on localhost")
    if settings.server.environment not in ("development", "production"):
        raise ConfigError("server.environment: must be 'development' or 'production'")
    if not settings.is_development:
        if not settings.server.secret_key:
            raise ConfigError("server.secret_key: required in production")
        if not settings.security.encryption_keys:
            raise ConfigError("security.encryption_keys: required in production")
    if settings.tokens.signing_alg not in ("RS256", "ES256"):
        raise ConfigError("tokens.signing_alg: must be RS256 or ES256")
    for name in ("code_lifetime", "access_token_lifetime", "id_token_lifetime",
                 "refresh_token_lifetime", "client_credentials_lifetime"):
        if getattr(settings.tokens, name) <= 0:
            raise ConfigError(f"tokens.{name}: must be a positive number of seconds")
    if settings.tokens.code_lifetime > 600:
        raise ConfigError("tokens.code_lifetime: at most 600 seconds (RFC 6749 4.1.2)")
    sec = settings.security
    # One check per key, so the message starts with the key's own dotted name.
    if sec.argon2_time_cost < 1:
        raise ConfigError("security.argon2_time_cost: must be at least 1")
    if sec.argon2_parallelism < 1:
        raise ConfigError("security.argon2_parallelism: must be at least 1")
    if sec.argon2_memory_kib < 8 * sec.argon2_parallelism:
        # argon2 needs at least 8 KiB per lane (RFC 9106 3.1).
        raise ConfigError("security.argon2_memory_kib: at least 8 KiB per unit of parallelism")
    if not 1 <= settings.server.port <= 65535:
        raise ConfigError("server.port: must be between 1 and 65535")
    if not 0 <= settings.server.trusted_proxy_hops <= 10:
        raise ConfigError("server.trusted_proxy_hops: must be between 0 and 10")
    if settings.server.log_format not in ("json", "text"):
        raise ConfigError("server.log_format: must be 'json' or 'text'")
    if settings.server.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("server.log_level: must be DEBUG, INFO, WARNING or ERROR")
    redis_url = urlsplit(sec.throttle_redis_url)
    if sec.throttle_redis_url and redis_url.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("security.throttle_redis_url: must be a redis://, rediss:// or "
                          "unix:// URL (empty: counters in the database)")
    _validate_mail(settings.mail)
    _validate_sms(settings.sms)


def _validate_mail(mail: MailSettings) -> None:
    if mail.backend not in ("dev", "smtp"):
        raise ConfigError("mail.backend: must be 'dev' or 'smtp'")
    if mail.smtp_security not in ("auto", "none", "starttls", "tls"):
        raise ConfigError("mail.smtp_security: must be 'auto', 'none', 'starttls' or 'tls'")
    if not 1 <= mail.smtp_port <= 65535:
        raise ConfigError("mail.smtp_port: must be between 1 and 65535")
    if "@" not in mail.from_address:
        raise ConfigError("mail.from_address: must contain an email address")
    if not mail.smtp_timeout > 0:
        raise ConfigError("mail.smtp_timeout: must be a positive number of seconds")
    if mail.max_attempts < 1:
        raise ConfigError("mail.max_attempts: must be at least 1")


def _validate_sms(sms: SmsSettings) -> None:
    if sms.backend not in ("dev", "http"):
        raise ConfigError("sms.backend: must be 'dev' or 'http'")
    if sms.backend == "http":
        url = urlsplit(sms.http_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ConfigError("sms.http_url: an absolute http(s) URL is required with 'http'")
        if url.scheme == "http" and url.hostname not in ("127.0.0.1", "localhost", "::1"):
            # The token and the codes travel in the request: never in clear over a network.
            raise ConfigError("sms.http_url: must use https except on localhost")
    if not sms.http_timeout > 0:
        raise ConfigError("sms.http_timeout: must be a positive number of seconds")
