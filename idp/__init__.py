"""Portal IdP: one hosted OpenID Connect sign-in for many portals."""

from __future__ import annotations

from idp.app import create_app

__all__ = ["create_app"]
