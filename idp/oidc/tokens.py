"""Issuing, storing, finding and revoking opaque access and refresh tokens.

Tokens are random and stored as SHA-256 hashes. Single use of codes and refresh tokens is
guaranteed by a conditional UPDATE (`claim_*`), so two concurrent redemptions cannot both win.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Request, scope_to_list
from flask import current_app
from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.orm import joinedload

from idp.clock import utcnow
from idp.db import db, read_first
from idp.models import (
    AuthorizationCode,
    Client,
    IdpSession,
    SessionClient,
    Token,
    TrustedDevice,
    User,
)
from idp.ops import metrics
from idp.security.secrets import generate_secret, hash_secret


def generate_bearer_token(
    grant_type: str,
    client: Client,
    user: Any = None,
    scope: str | None = None,
    expires_in: int | None = None,
    include_refresh_token: bool = True,
) -> dict[str, Any]:
    """authlib token generator: random opaque tokens with configured lifetimes."""
    settings = current_app.extensions["idp"].settings.tokens
    if expires_in is None:
        # The client's own lifetime (set in the admin console) wins over the server's.
        expires_in = client.access_token_lifetime or (
            settings.client_credentials_lifetime
            if grant_type == "client_credentials"
            else settings.access_token_lifetime
        )
    token: dict[str, Any] = {
        "token_type": "Bearer",
        "access_token": generate_secret(32),
        "expires_in": expires_in,
    }
    if scope:
        token["scope"] = scope
    if include_refresh_token:
        token["refresh_token"] = generate_secret(32)
    return token


_INSERT_TOKEN = insert(Token.__table__)  # built once


def save_token(token: dict[str, Any], request: OAuth2Request) -> None:
    """Store the hashes of a newly issued token, linked to its code, family and session."""
    settings = current_app.extensions["idp"].settings.tokens
    now = utcnow()
    code: AuthorizationCode | None = request.authorization_code
    previous: Token | None = request.refresh_token
    user = request.user
    session_id = code.session_id if code else (previous.session_id if previous else None)
    # A Core insert in the session's transaction: the ORM's unit of work cost more than the
    # statement (a third of a client-credentials grant), and nothing reads the row back.
    db.session.connection().execute(_INSERT_TOKEN, dict(
        client_id=request.client.client_id,
        user_id=user.id if user is not None else None,
        family_id=previous.family_id if previous else generate_secret(16),
        authorization_code_id=code.id if code else (previous.authorization_code_id
                                                    if previous else None),
        session_id=session_id,
        access_token_hash=hash_secret(token["access_token"]),
        refresh_token_hash=hash_secret(token["refresh_token"]) if "refresh_token" in token
        else None,
        scope=token.get("scope", ""),
        issued_at=now,
        access_expires_at=now + timedelta(seconds=token["expires_in"]),
        refresh_expires_at=_refresh_expiry(
            now, previous, request.client.refresh_token_lifetime
            or settings.refresh_token_lifetime) if "refresh_token" in token else None,
        auth_time=code.auth_time if code else (previous.auth_time if previous else None),
        acr=code.acr if code else (previous.acr if previous else None),
        amr=list(code.amr) if code else (list(previous.amr) if previous else []),
    ))
    if session_id and previous is None:  # a refresh's family was recorded at its code
        _remember_session_client(session_id, request.client.client_id)
    db.session.commit()
    metrics.TOKENS_ISSUED.labels(request.payload.grant_type or "unknown").inc()


def _refresh_expiry(now: datetime, previous: Token | None, lifetime: int) -> datetime:
    # Rotation does not extend the family's life: the first refresh token's expiry holds.
    if previous is not None and previous.refresh_expires_at is not None:
        return previous.refresh_expires_at
    return now + timedelta(seconds=lifetime)


def _remember_session_client(session_id: str, client_id: str) -> None:
    if db.session.get(SessionClient, (session_id, client_id)) is None:
        db.session.add(SessionClient(session_id=session_id, client_id=client_id))


# Built once (building a statement costs about as much as running it here). The person
# comes with the row: refresh and revocation need them, and a row holding them keeps the
# session's identity map from dropping and reloading them mid-request.
_WITH_USER = db.select(Token).options(joinedload(Token.user))
_TOKEN_BY_HINT = {
    "access_token": _WITH_USER.where(Token.access_token_hash == bindparam("digest")),
    "refresh_token": _WITH_USER.where(Token.refresh_token_hash == bindparam("digest")),
    None: _WITH_USER.where(or_(Token.access_token_hash == bindparam("digest"),
                               Token.refresh_token_hash == bindparam("digest"))),
}


def find_token(value: str, hint: str | None = None) -> Token | None:
    """The token row whose access or refresh token is `value`, revoked or not."""
    statement = _TOKEN_BY_HINT.get(hint, _TOKEN_BY_HINT[None])
    return db.session.execute(statement, {"digest": hash_secret(value)}).scalars().first()


# Userinfo, introspection and the admin API read an access token on every call: one Core
# statement with the person's claims and the client's portal, and no ORM objects (loading
# three entities cost about three times the query here). Revocation and expiry are still
# read from the row on every call: nothing about a token's validity is cached.
_ACCESS_GRANT = (
    select(Token.client_id, Token.user_id, Token.scope, Token.issued_at,
           Token.access_expires_at, Token.revoked_at, User.sub, User.email,
           User.email_verified, User.name, User.phone, User.phone_verified,
           User.disabled_at.label("user_disabled_at"), Client.portal_id)
    .outerjoin(User, User.id == Token.user_id)
    .outerjoin(Client, Client.client_id == Token.client_id)
    .where(Token.access_token_hash == bindparam("digest"))
)


@dataclass(frozen=True, slots=True)
class Claimant:
    """The person behind an access token, as the claims need them (`claims.Person`)."""

    sub: str
    email: str
    email_verified: bool
    name: str | None
    phone: str | None
    phone_verified: bool


@dataclass(frozen=True, slots=True)
class AccessGrant:
    """A valid access token as userinfo, introspection and the admin API see it (authlib's
    TokenMixin)."""

    client_id: str
    user_id: int | None
    scope: str
    issued_at: datetime
    access_expires_at: datetime
    revoked_at: datetime | None
    portal_id: int | None  # the client's portal (per-portal claims)
    sub: str | None  # the person's; None for a client's own token (client credentials)
    # Their claims; None also when the person is disabled (nothing is released then).
    person: Claimant | None

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return utcnow() >= self.access_expires_at

    def is_revoked(self) -> bool:
        return self.revoked_at is not None


def find_active_access_token(value: str) -> AccessGrant | None:
    """A valid (unexpired, unrevoked) access token, for userinfo and introspection."""
    row = read_first(_ACCESS_GRANT, {"digest": hash_secret(value)})
    if row is None:
        return None
    active = row.sub is not None and row.user_disabled_at is None
    grant = AccessGrant(
        row.client_id, row.user_id, row.scope, row.issued_at, row.access_expires_at,
        row.revoked_at, row.portal_id, row.sub,
        Claimant(row.sub, row.email, row.email_verified, row.name, row.phone,
                 row.phone_verified) if active else None)
    return None if grant.is_revoked() or grant.is_expired() else grant


def outlives_session(row: Token) -> bool:
    """Tokens granted `offline_access` (or issued outside a session) outlive the session."""
    return row.session_id is None or "offline_access" in (scope_to_list(row.scope) or [])


def session_is_live(row: Token) -> bool:
    record = db.session.get(IdpSession, row.session_id) if row.session_id else None
    return record is not None and record.is_current()


def kept_by_trusted_browser(row: Token) -> bool:
    """A sign-in that passed MFA on a browser the person trusts keeps its tokens alive.

    The rule (the seed's mobile-app complaint: "if you just close the app, the trust
    period you chose will be honored"): when the sign-in passed MFA (`amr` has "mfa") and
    the browser was trusted ("Trust this browser" for N days, recorded on the session by
    `idp.login.flow.finish`), its refresh tokens outlive the browser session's idle
    timeout and maximum while that trust is current: at most N days from the choice, and
    never past the refresh token's own lifetime. Signing out still ends them (the session
    ends and revokes them), and so do revoking the trust, an MFA reset and a password
    change (which revoke trusts).
    """
    if row.session_id is None or "mfa" not in (row.amr or []):
        return False
    record = db.session.get(IdpSession, row.session_id)
    if record is None or record.ended_at is not None or record.trusted_device_id is None:
        return False
    trust = db.session.get(TrustedDevice, record.trusted_device_id)
    return trust is not None and trust.user_id == row.user_id and trust.is_current()


# Built once, like the lookups above: the token endpoint runs one of them per grant. Run
# as Core statements in the session's transaction: the ORM's UPDATE would first look for
# the rows among the session's objects to update them too (a third of the statement's cost),
# and nothing reads `used_at` / `refresh_used_at` back in the same request.
_CLAIM_CODE = (update(AuthorizationCode)
               .where(AuthorizationCode.id == bindparam("code_id"),
                      AuthorizationCode.used_at.is_(None))
               .values(used_at=bindparam("now")))
_CLAIM_REFRESH = (update(Token)
                  .where(Token.id == bindparam("token_id"), Token.refresh_used_at.is_(None),
                         Token.revoked_at.is_(None))
                  .values(refresh_used_at=bindparam("now")))


def claim_authorization_code(code: AuthorizationCode) -> bool:
    """Mark `code` used; False if another request used it first."""
    result = db.session.connection().execute(_CLAIM_CODE, {"code_id": code.id, "now": utcnow()})
    return result.rowcount == 1


def claim_refresh_token(token: Token) -> bool:
    """Mark a refresh token rotated; False if it was already used (reuse)."""
    result = db.session.connection().execute(_CLAIM_REFRESH,
                                              {"token_id": token.id, "now": utcnow()})
    return result.rowcount == 1


def revoke_tokens_of_code(code: AuthorizationCode) -> None:
    """RFC 6749 4.1.2: a replayed code revokes every token issued from it."""
    families = db.select(Token.family_id).where(Token.authorization_code_id == code.id)
    _revoke(Token.family_id.in_(families))


def revoke_family(family_id: str) -> None:
    """RFC 9700 4.14.2: reuse of a rotated refresh token revokes the whole family."""
    _revoke(Token.family_id == family_id)


def revoke_session_tokens(session_id: str) -> None:
    """Sign-out ends the session's tokens, except those granted `offline_access`."""
    rows = db.session.scalars(
        db.select(Token).where(Token.session_id == session_id, Token.revoked_at.is_(None))
    ).all()
    now = utcnow()
    for row in rows:
        if "offline_access" not in (scope_to_list(row.scope) or []):
            row.revoked_at = now


def revoke_user_tokens(user_id: int) -> None:
    """Every token of a person (password change, account disabled)."""
    _revoke(Token.user_id == user_id)


def _revoke(condition: Any) -> None:
    db.session.execute(
        update(Token).where(condition, Token.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
