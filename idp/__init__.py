"""Portal IdP: one hosted OpenID Connect sign-in for many portals."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # `from idp import create_app` loads the app on first use, not at package import:
    # gunicorn's config (idp.ops.gunicorn_conf) must set PROMETHEUS_MULTIPROC_DIR before
    # anything imports prometheus_client, which picks its storage once, at import.
    if name == "create_app":
        from idp.app import create_app

        return create_app
    raise AttributeError(f"module 'idp' has no attribute {name!r}")
