"""Standard claims of a user, released by scope (OIDC Core 5.4), and per-portal claims.

Under `profile`, a user linked to a contact of the client's portal also gets
`contact_id` (the portal's own id for them) and that portal's `preferred_username`
(OIDC Core 5.1: the name the portal knows them by). Both are profile data of the person
at that portal, so they follow the scope that releases `name`; so does
`legacy_usernames`, the portal's old usernames that now sign in as this `sub`
(`idp.legacy.accounts.legacy_claims`).
"""

from __future__ import annotations

from typing import Any, Protocol

from authlib.oauth2.rfc6749 import scope_to_list
from authlib.oidc.core import UserInfo

from idp.contacts import contact_for, preferred_username
from idp.legacy.accounts import is_placeholder_email, legacy_claims
from idp.models import Client, Portal, User


class Person(Protocol):
    """What the standard claims are made of: a `User`, or the claim columns an access-token
    lookup brings along (`idp.oidc.tokens.Claimant`: userinfo loads no person)."""

    @property
    def sub(self) -> str: ...
    @property
    def email(self) -> str: ...
    @property
    def email_verified(self) -> bool: ...
    @property
    def name(self) -> str | None: ...
    @property
    def phone(self) -> str | None: ...
    @property
    def phone_verified(self) -> bool: ...


def releases_portal_claims(scope: str, portal_id: int | None) -> bool:
    """Whether `portal_claims` has anything to add (they need the person and portal rows)."""
    return portal_id is not None and "profile" in (scope_to_list(scope) or [])


def user_claims(user: User, scope: str, client: Client | None = None) -> UserInfo:
    """Claims for `user` that `scope` allows; `sub` always; per-portal ones for `client`."""
    portal = client.portal if client is not None else None
    extra = (portal_claims(user, portal)
             if portal is not None and releases_portal_claims(scope, portal.id) else {})
    return standard_claims(user, scope, extra)


def standard_claims(person: Person, scope: str, portal_extra: dict[str, Any]) -> UserInfo:
    """`sub`, then what `scope` releases; `portal_extra` (from `portal_claims`) with profile."""
    scopes = set(scope_to_list(scope) or [])
    claims: dict[str, Any] = {"sub": person.sub}
    if "profile" in scopes:
        if person.name:
            claims["name"] = person.name
        for key, value in portal_extra.items():
            claims.setdefault(key, value)
    # A legacy account not yet migrated has no email of its own to release.
    if "email" in scopes and not is_placeholder_email(person.email):
        claims["email"] = person.email
        claims["email_verified"] = bool(person.email_verified)
    if "phone" in scopes and person.phone:
        claims["phone_number"] = person.phone
        claims["phone_number_verified"] = bool(person.phone_verified)
    return UserInfo(claims)


def portal_claims(user: User, portal: Portal) -> dict[str, Any]:
    """`contact_id` and `preferred_username` from the contact, and the legacy usernames."""
    claims: dict[str, Any] = {}
    contact = contact_for(user, portal)
    if contact is not None:
        claims["contact_id"] = contact.external_id
        claims["preferred_username"] = preferred_username(contact, user)
    # preferred_username: the contact's when there is one, else the legacy username.
    for key, value in legacy_claims(user, portal).items():
        claims.setdefault(key, value)
    return claims
