"""Authorization codes, tokens, consents and used client assertions."""

from __future__ import annotations

from datetime import datetime

from authlib.oauth2.rfc6749 import TokenMixin
from authlib.oidc.core import AuthorizationCodeMixin
from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.clock import to_epoch, utcnow
from idp.db import db
from idp.models.client import Client
from idp.models.user import User


class AuthorizationCode(db.Model, AuthorizationCodeMixin):  # type: ignore[name-defined,misc]
    __tablename__ = "authorization_codes"
    # Every authorization request checks its nonce was not used by the client before: with
    # the client's index alone that scanned all of a busy client's codes (migration 0005).
    __table_args__ = (Index("ix_authorization_codes_client_id_nonce", "client_id", "nonce"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    session_id: Mapped[str | None] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    scope: Mapped[str] = mapped_column(String(1000))
    nonce: Mapped[str | None] = mapped_column(String(500))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(10))
    # The code's own issue time and the user's authentication time are different facts.
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    auth_time: Mapped[datetime]
    acr: Mapped[str | None] = mapped_column(String(100))
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    used_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return to_epoch(self.auth_time)

    def get_acr(self) -> str | None:
        return self.acr

    def get_amr(self) -> list[str]:
        return list(self.amr or [])


class Token(db.Model, TokenMixin):  # type: ignore[name-defined,misc]
    """One access token and, optionally, the refresh token issued with it.

    Tokens from one authorization share a `family_id`: refresh rotation issues a new row
    in the same family, and reuse of a rotated refresh token revokes the whole family.
    """

    __tablename__ = "tokens"
    __table_args__ = (Index("ix_tokens_family_id", "family_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    session_id: Mapped[str | None] = mapped_column(String(64), index=True)
    family_id: Mapped[str] = mapped_column(String(64))
    authorization_code_id: Mapped[int | None] = mapped_column(
        ForeignKey("authorization_codes.id"), index=True
    )
    access_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(1000), default="")
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    access_expires_at: Mapped[datetime]
    refresh_expires_at: Mapped[datetime | None]
    refresh_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    auth_time: Mapped[datetime | None]
    acr: Mapped[str | None] = mapped_column(String(100))
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)

    user: Mapped[User | None] = relationship()
    # Loaded once per row (userinfo asks for it twice), or with the row by a joinedload.
    client: Mapped[Client | None] = relationship(
        primaryjoin="foreign(Token.client_id) == Client.client_id", viewonly=True)

    def check_client(self, client: Client) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return int((self.access_expires_at - self.issued_at).total_seconds())

    def is_expired(self) -> bool:
        return utcnow() >= self.access_expires_at

    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def is_refresh_expired(self) -> bool:
        return self.refresh_expires_at is None or utcnow() >= self.refresh_expires_at

    def get_user(self) -> User | None:
        return self.user

    def get_client(self) -> Client | None:
        return self.client


class Consent(db.Model):  # type: ignore[name-defined]
    """Scopes a user granted to a third-party client."""

    __tablename__ = "consents"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    scope: Mapped[str] = mapped_column(String(1000))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)


class UsedAssertion(db.Model):  # type: ignore[name-defined]
    """`jti` of client assertions already seen (RFC 7523 3, replay protection)."""

    __tablename__ = "used_assertions"

    jti_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(index=True)

