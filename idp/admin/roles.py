"""Roles and what each may do; the one place a permission is decided.

- `admin`: everything.
- `support`: find people and help them (reset email, resend invitation, reset MFA, unlock,
  end sessions); read the outbox (and retry a message) and the audit log. No clients, no
  portal settings, no disabling accounts.
- `portal_admin`: one portal: its settings, clients, contacts, invitations, legacy accounts
  and its people (everything support does, plus disable/enable and imports), its audit
  events and outbox. Other portals do not exist for it.

No role can read a password, a TOTP secret, a recovery code or a client secret: the
console and API have no path that returns one (secrets are hashed or encrypted at rest).
An API client (client credentials with scope `idp:admin`) acts as `admin`, or as
`portal_admin` of its own portal when it belongs to one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ADMIN, SUPPORT, PORTAL_ADMIN = "admin", "support", "portal_admin"
ROLES = (ADMIN, SUPPORT, PORTAL_ADMIN)

# Permissions, by area. "read" sees, "write" changes; people.* are the help-desk actions.
CLIENTS_READ, CLIENTS_WRITE = "clients.read", "clients.write"
PORTALS_READ, PORTALS_WRITE, PORTALS_CREATE = "portals.read", "portals.write", "portals.create"
PEOPLE_READ, PEOPLE_HELP, PEOPLE_MANAGE = "people.read", "people.help", "people.manage"
CONTACTS_READ, CONTACTS_WRITE = "contacts.read", "contacts.write"
INVITATIONS_READ, INVITATIONS_SEND = "invitations.read", "invitations.send"
LEGACY_READ, LEGACY_WRITE = "legacy.read", "legacy.write"
OUTBOX_READ, OUTBOX_RETRY = "outbox.read", "outbox.retry"
AUDIT_READ = "audit.read"
ROLES_MANAGE = "roles.manage"

_SUPPORT = frozenset({
    PORTALS_READ, PEOPLE_READ, PEOPLE_HELP, CONTACTS_READ, INVITATIONS_READ,
    INVITATIONS_SEND, LEGACY_READ, OUTBOX_READ, OUTBOX_RETRY, AUDIT_READ,
})
_PORTAL_ADMIN = _SUPPORT | {
    CLIENTS_READ, CLIENTS_WRITE, PORTALS_WRITE, PEOPLE_MANAGE, CONTACTS_WRITE, LEGACY_WRITE,
}
_ALL = _PORTAL_ADMIN | {PORTALS_CREATE, ROLES_MANAGE}

PERMISSIONS: dict[str, frozenset[str]] = {
    ADMIN: _ALL,
    SUPPORT: _SUPPORT,
    PORTAL_ADMIN: _PORTAL_ADMIN,
}

ROLE_LABELS = {
    ADMIN: "Administrator",
    SUPPORT: "Support",
    PORTAL_ADMIN: "Portal administrator",
}


@dataclass(frozen=True)
class Grant:
    """One role; `portal_id` limits a portal_admin to one portal."""

    role: str
    portal_id: int | None = None


@dataclass(frozen=True)
class Actor:
    """Who is acting in the console or API, with every role they hold.

    `label` goes into the audit log as the actor ("admin:<email>", "client:<client_id>").
    """

    label: str
    grants: tuple[Grant, ...]
    user_id: int | None = None
    client_id: str | None = None

    @property
    def roles(self) -> set[str]:
        return {g.role for g in self.grants}

    def is_global(self, permission: str) -> bool:
        """The permission holds for every portal (and for things outside any portal)."""
        return any(g.role != PORTAL_ADMIN and permission in PERMISSIONS[g.role]
                   for g in self.grants)

    def portal_ids(self, permission: str) -> set[int] | None:
        """The portals the permission holds for; None means all of them."""
        if self.is_global(permission):
            return None
        return {g.portal_id for g in self.grants
                if g.role == PORTAL_ADMIN and g.portal_id is not None
                and permission in PERMISSIONS[PORTAL_ADMIN]}

    def can(self, permission: str, portal_id: int | None = None) -> bool:
        """May do `permission` (on `portal_id`'s things when given; anywhere when not)."""
        allowed = self.portal_ids(permission)
        if allowed is None:
            return True
        if portal_id is None:
            return bool(allowed)
        return portal_id in allowed

    def can_any(self, permission: str, portal_ids: Iterable[int]) -> bool:
        """May do `permission` on something that belongs to any of `portal_ids`."""
        allowed = self.portal_ids(permission)
        return allowed is None or bool(allowed & set(portal_ids))
