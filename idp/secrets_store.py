"""Where the session secret and encryption keys come from.

Production takes them from configuration (checked at start-up). Development may leave
them empty: they are generated once and kept in `instance/dev-secrets.json`, so
`make run` needs no setup and a restart keeps sessions and encrypted keys readable.
"""

from __future__ import annotations

import json
import os

from idp.config import ConfigError, Settings
from idp.security.encryption import generate_encryption_key
from idp.security.secrets import generate_secret

DEV_SECRETS_FILE = "dev-secrets.json"


def resolve_secrets(settings: Settings) -> tuple[str, tuple[str, ...]]:
    """(secret_key, encryption_keys) to run with."""
    secret_key = settings.server.secret_key
    keys = settings.security.encryption_keys
    if secret_key and keys:
        return secret_key, keys
    if not settings.is_development:  # validated already; kept as a guard
        raise ConfigError("server.secret_key: required in production")
    stored = _load_or_create_dev_secrets(settings)
    return secret_key or stored["secret_key"], keys or (stored["encryption_key"],)


def _load_or_create_dev_secrets(settings: Settings) -> dict[str, str]:
    path = settings.instance_dir / DEV_SECRETS_FILE
    if path.exists():
        return dict(json.loads(path.read_text()))
    path.parent.mkdir(parents=True, exist_ok=True)
    values = {"secret_key": generate_secret(32), "encryption_key": generate_encryption_key()}
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return dict(json.loads(path.read_text()))
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle)
    return values
