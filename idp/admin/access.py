"""Who is acting: role grants, the console's built-in client, and the API's bearer tokens.

The console signs staff in the way every portal does: it is a first-party client of this
IdP ("idp-admin-console", portal "idp-admin") and sends them through /authorize with
`acr_values=urn:portal-idp:acr:mfa`. Its portal's policy requires MFA with no skips, so a
person without a second factor enrols one first; the callback also refuses any sign-in
whose `acr` is not an MFA level. The console stays signed in only while that IdP session
lives: signing out anywhere, an idle timeout, or disabling the account ends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from flask import current_app, request, session

from idp import audit
from idp.admin.roles import ADMIN, PORTAL_ADMIN, ROLES, Actor, Grant
from idp.db import db
from idp.login.sessions import current_session
from idp.login.transaction import ACR_MFA, ACR_PHISHING_RESISTANT
from idp.models import AdminRole, Client, Portal, User
from idp.models.user import normalise_email
from idp.oidc import tokens
from idp.policy import LoginPolicy

CONSOLE_CLIENT_ID = "idp-admin-console"
CONSOLE_PORTAL_SLUG = "idp-admin"
CONSOLE_SESSION_KEY = "admin"
API_SCOPE = "idp:admin"
MFA_ACRS = (ACR_MFA, ACR_PHISHING_RESISTANT)

# Staff sign-ins: MFA from the beginning of time, never skipped, short idle timeout.
CONSOLE_POLICY = LoginPolicy(
    mfa_required_from=date(2000, 1, 1), mfa_skips_allowed=0, idle_timeout_minutes=30,
    session_max_hours=12, keep_me_signed_in_max_days=1,
)


class RoleError(ValueError):
    """A role cannot be granted or revoked as asked; the message says why."""


# -- grants ---------------------------------------------------------------------------------


def grants_of(user: User) -> tuple[Grant, ...]:
    rows = db.session.execute(
        db.select(AdminRole).filter_by(user_id=user.id).order_by(AdminRole.id)
    ).scalars()
    return tuple(Grant(row.role, row.portal_id) for row in rows)


def grant_role(email: str, role: str, portal_slug: str | None = None,
               actor: str = "cli") -> AdminRole:
    """Give `role` to the account with `email` (portal_admin needs `portal_slug`)."""
    user, portal = _role_target(email, role, portal_slug)
    existing = db.session.execute(db.select(AdminRole).filter_by(
        user_id=user.id, role=role, portal_id=portal.id if portal else None)).scalar_one_or_none()
    if existing is not None:
        return existing
    row = AdminRole(user_id=user.id, role=role, portal_id=portal.id if portal else None,
                    granted_by=actor)
    db.session.add(row)
    audit.record("admin.role_granted", actor=actor, subject=user.email, commit=False,
                 portal=portal.slug if portal else None, role=role)
    db.session.commit()
    return row


def revoke_role(email: str, role: str, portal_slug: str | None = None,
                actor: str = "cli") -> bool:
    """Take `role` away; False when the account did not have it."""
    user, portal = _role_target(email, role, portal_slug)
    row = db.session.execute(db.select(AdminRole).filter_by(
        user_id=user.id, role=role, portal_id=portal.id if portal else None)).scalar_one_or_none()
    if row is None:
        return False
    db.session.delete(row)
    audit.record("admin.role_revoked", actor=actor, subject=user.email, commit=False,
                 portal=portal.slug if portal else None, role=role)
    db.session.commit()
    return True


def _role_target(email: str, role: str, portal_slug: str | None) -> tuple[User, Portal | None]:
    if role not in ROLES:
        raise RoleError(f"role: one of {', '.join(ROLES)}")
    if (role == PORTAL_ADMIN) != bool(portal_slug):
        raise RoleError("portal: required for portal_admin, and only for it")
    user = db.session.execute(
        db.select(User).filter_by(email=normalise_email(email))
    ).scalar_one_or_none()
    if user is None:
        raise RoleError(f"email: no account for {email}")
    portal = None
    if portal_slug:
        portal = db.session.execute(
            db.select(Portal).filter_by(slug=portal_slug)).scalar_one_or_none()
        if portal is None:
            raise RoleError(f"portal: no portal with slug {portal_slug!r}")
    return user, portal


# -- the console's own client -----------------------------------------------------------


def console_redirect_uri() -> str:
    issuer: str = current_app.extensions["idp"].settings.server.issuer
    return issuer + "/admin/callback"


def ensure_console_client() -> Client:
    """The console's client and portal, made on first use and kept at the current issuer."""
    client = db.session.execute(
        db.select(Client).filter_by(client_id=CONSOLE_CLIENT_ID)).scalar_one_or_none()
    redirect_uri = console_redirect_uri()
    if client is None:
        portal = db.session.execute(
            db.select(Portal).filter_by(slug=CONSOLE_PORTAL_SLUG)).scalar_one_or_none()
        if portal is None:
            portal = Portal(slug=CONSOLE_PORTAL_SLUG, name="Portal IdP administration")
            portal.policy = CONSOLE_POLICY
            db.session.add(portal)
        client = Client(
            client_id=CONSOLE_CLIENT_ID, name="Admin console", portal=portal,
            redirect_uris=[redirect_uri], grant_types=["authorization_code"], scope="openid",
            token_endpoint_auth_method="none", first_party=True,
        )
        db.session.add(client)
        db.session.commit()
    elif client.redirect_uris != [redirect_uri] or client.disabled_at is not None:
        client.redirect_uris, client.disabled_at = [redirect_uri], None
        db.session.commit()
    return client


# -- console sign-in state -------------------------------------------------------------


@dataclass(frozen=True)
class ConsoleSignIn:
    user_id: int
    session_id: str
    acr: str


def remember_console_sign_in(sign_in: ConsoleSignIn) -> None:
    session[CONSOLE_SESSION_KEY] = {
        "uid": sign_in.user_id, "sid": sign_in.session_id, "acr": sign_in.acr,
    }


def forget_console_sign_in() -> None:
    session.pop(CONSOLE_SESSION_KEY, None)


def console_actor() -> Actor | None:
    """The signed-in staff member, or None (not signed in, session over, no role any more)."""
    data = session.get(CONSOLE_SESSION_KEY)
    if not isinstance(data, dict):
        return None
    record = current_session()
    if (record is None or record.id != data.get("sid") or record.user_id != data.get("uid")
            or data.get("acr") not in MFA_ACRS):
        forget_console_sign_in()
        return None
    grants = grants_of(record.user)
    if not grants:
        forget_console_sign_in()
        return None
    return Actor(label=f"admin:{record.user.email}", grants=grants, user_id=record.user_id)


# -- API bearer tokens ------------------------------------------------------------------


class BearerProblem(Exception):
    """The request's bearer token is missing, invalid or lacks the admin scope."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def api_actor() -> Actor:
    """The API client behind the request's bearer token (RFC 6750), or BearerProblem."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise BearerProblem(401, "", "A bearer token (client credentials, scope idp:admin) "
                                     "is required.")
    row = tokens.find_active_access_token(value.strip())
    client = None if row is None else db.session.execute(
        db.select(Client).filter_by(client_id=row.client_id)).scalar_one_or_none()
    if row is None or client is None or client.disabled_at is not None:
        raise BearerProblem(401, "invalid_token", "The access token is invalid or expired.")
    if row.user_id is not None or API_SCOPE not in (row.scope or "").split():
        # Only a client's own token (client credentials) with the admin scope acts here.
        raise BearerProblem(403, "insufficient_scope",
                            "The token needs the idp:admin scope from a client credentials grant.")
    grant = Grant(PORTAL_ADMIN, client.portal_id) if client.portal_id else Grant(ADMIN)
    return Actor(label=f"client:{client.client_id}", grants=(grant,),
                 client_id=client.client_id)
