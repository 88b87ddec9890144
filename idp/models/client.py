"""A registered relying-party application (OAuth client), implementing authlib's ClientMixin."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin, scope_to_list
from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.clock import utcnow
from idp.db import db
from idp.models.portal import Portal
from idp.policy import LoginPolicy
from idp.security.secrets import secret_matches

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
DEFAULT_SCOPE = "openid profile email phone offline_access"


class Client(db.Model, ClientMixin):  # type: ignore[name-defined,misc]
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    # SHA-256 of the generated secret: shown once at creation, never stored in clear.
    client_secret_hash: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    portal_id: Mapped[int | None] = mapped_column(ForeignKey("portals.id"))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(2000))
    grant_types: Mapped[list[str]] = mapped_column(
        JSON, default=lambda: ["authorization_code", "refresh_token"]
    )
    scope: Mapped[str] = mapped_column(String(1000), default=DEFAULT_SCOPE)
    token_endpoint_auth_method: Mapped[str] = mapped_column(
        String(40), default="client_secret_basic"
    )
    # Public keys for private_key_jwt (RFC 7523), as a JWK Set.
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # ID token algorithm chosen by the client (OIDC Registration 2); None: server default.
    id_token_signed_response_alg: Mapped[str | None] = mapped_column(String(10))
    first_party: Mapped[bool] = mapped_column(default=False)
    # Token lifetimes in seconds for this client; None: the server's [tokens] settings.
    access_token_lifetime: Mapped[int | None]
    refresh_token_lifetime: Mapped[int | None]
    disabled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    portal: Mapped[Portal | None] = relationship()

    @property
    def policy(self) -> LoginPolicy:
        """The login policy of the client's portal (defaults without a portal)."""
        return self.portal.policy if self.portal is not None else LoginPolicy()

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    @property
    def client_metadata(self) -> dict[str, Any]:
        """Registration metadata as named by RFC 7591 / OIDC Registration."""
        return {
            "client_name": self.name,
            "redirect_uris": list(self.redirect_uris),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
            "backchannel_logout_uri": self.backchannel_logout_uri,
            "grant_types": list(self.grant_types),
            "scope": self.scope,
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
        }

    # authlib ClientMixin

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # OIDC Core 3.1.2.1 makes redirect_uri required; a default would hide mistakes.
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = set(scope_to_list(self.scope))
        return " ".join(s for s in scope_to_list(scope) if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # RFC 9700 4.1.1: exact string comparison, nothing else.
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secret_matches(client_secret, self.client_secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    def __repr__(self) -> str:
        return f"<Client {self.client_id}>"


class ClientSecretReveal(db.Model):  # type: ignore[name-defined]
    """A new client secret waiting to be shown, once, to the staff member who made it.

    The console answers a POST with a redirect (303), so the secret must wait on the server
    for the page that shows it; it is encrypted at rest, bound to the staff member's IdP
    session, deleted when shown and useless after a few minutes (idp.clients).
    """

    __tablename__ = "client_secret_reveals"

    # SHA-256 of the random id in the page's URL.
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    session_id: Mapped[str] = mapped_column(String(64))
    secret_encrypted: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime]
