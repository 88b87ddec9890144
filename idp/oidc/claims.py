"""Standard claims of a user, released by scope (OIDC Core 5.4), and per-portal claims.

Under `profile`, a user linked to a contact of the client's portal also gets
`contact_id` (the portal's own id for them) and that portal's `preferred_username`
(OIDC Core 5.1: the name the portal knows them by). Both are profile data of the person
at that portal, so they follow the scope that releases `name`; so does
`legacy_usernames`, the portal's old usernames that now sign in as this `sub`
(`idp.legacy.accounts.legacy_claims`).
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import scope_to_list
from authlib.oidc.core import UserInfo

from idp.contacts import contact_for, preferred_username
from idp.legacy.accounts import is_placeholder, legacy_claims
from idp.models import Client, User


def user_claims(user: User, scope: str, client: Client | None = None) -> UserInfo:
    """Claims for `user` that `scope` allows; `sub` always; per-portal ones for `client`."""
    scopes = set(scope_to_list(scope) or [])
    claims: dict[str, Any] = {"sub": user.sub}
    if "profile" in scopes:
        if user.name:
            claims["name"] = user.name
        if client is not None and client.portal is not None:
            contact = contact_for(user, client.portal)
            if contact is not None:
                claims["contact_id"] = contact.external_id
                claims["preferred_username"] = preferred_username(contact, user)
            # preferred_username: the contact's when there is one, else the legacy username.
            for key, value in legacy_claims(user, client.portal).items():
                claims.setdefault(key, value)
    # A legacy account not yet migrated has no email of its own to release.
    if "email" in scopes and not is_placeholder(user):
        claims["email"] = user.email
        claims["email_verified"] = bool(user.email_verified)
    if "phone" in scopes and user.phone:
        claims["phone_number"] = user.phone
        claims["phone_number_verified"] = bool(user.phone_verified)
    return UserInfo(claims)
