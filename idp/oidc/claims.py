"""Standard claims of a user, released by scope (OIDC Core 5.4)."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import scope_to_list
from authlib.oidc.core import UserInfo

from idp.models import User


def user_claims(user: User, scope: str) -> UserInfo:
    """Claims for `user` that `scope` allows; `sub` always."""
    scopes = set(scope_to_list(scope) or [])
    claims: dict[str, Any] = {"sub": user.sub}
    if "profile" in scopes and user.name:
        claims["name"] = user.name
    if "email" in scopes:
        claims["email"] = user.email
        claims["email_verified"] = bool(user.email_verified)
    if "phone" in scopes and user.phone:
        claims["phone_number"] = user.phone
        claims["phone_number_verified"] = bool(user.phone_verified)
    return UserInfo(claims)
