"""The module-level authorization server and resource protector, configured by `init_oidc`."""

from __future__ import annotations

from typing import Any

from authlib.consts import default_json_headers
from authlib.integrations.flask_oauth2 import (
    AuthorizationServer,
    ResourceProtector,
)
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenValidator, InvalidTokenError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.core import UserInfoEndpoint
from flask import Flask, current_app
from sqlalchemy import bindparam
from sqlalchemy.orm import joinedload

from idp import audit
from idp.clock import to_epoch
from idp.db import db
from idp.models import Client, Portal, Token, User
from idp.oidc import grants, tokens
from idp.oidc.claims import portal_claims, releases_portal_claims, standard_claims
from idp.oidc.client_auth import PrivateKeyJWT, client_secret_basic
from idp.oidc.logout import EndSession
from idp.oidc.memo import per_request

SCOPES_SUPPORTED = ["openid", "profile", "email", "phone", "offline_access"]
ENDPOINT_AUTH_METHODS = grants.CONFIDENTIAL_AUTH_METHODS + ["none"]


class PortalAuthorizationServer(AuthorizationServer):
    """authlib's Flask server that can also replay a stored authorization request."""

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return super().create_oauth2_request(request)  # type: ignore[no-any-return]


def stored_authorization_request(params: dict[str, str], issuer: str) -> OAuth2Request:
    """Rebuild the validated authorization request a login transaction saved."""
    request = OAuth2Request("GET", issuer + "/authorize")
    request.payload = BasicOAuth2Payload(dict(params))
    return request


# Built once (building a statement costs about as much as running it): every token,
# introspection and revocation request looks its client up; the portal (policy, per-portal
# claims) comes in the same query.
_CLIENT_BY_ID = db.select(Client).options(joinedload(Client.portal)).where(
    Client.client_id == bindparam("client_id"))


def client_by_id(client_id: str) -> Client | None:
    """The client `client_id`, enabled or not; looked up once per request.

    authlib validates an authorization request twice when it issues the code (consent,
    then response), and the sign-in pages need the client too: one query serves them all.
    """
    return per_request(("client", client_id), lambda: db.session.execute(
        _CLIENT_BY_ID, {"client_id": client_id}).scalar_one_or_none())


def query_client(client_id: str) -> Client | None:
    """Enabled clients only; a disabled client is unknown to the protocol."""
    client = client_by_id(client_id)
    return client if client is not None and client.disabled_at is None else None


class AccessTokenValidator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> tokens.AccessGrant | None:
        return tokens.find_active_access_token(token_string)


class TokenRevocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ENDPOINT_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        # RFC 7009 2.1: a wrong hint must not stop the search.
        return tokens.find_token(token_string, token_type_hint) or tokens.find_token(token_string)

    def revoke_token(self, token: Token, request: OAuth2Request) -> None:
        # RFC 7009 2.1: revoking a refresh token also invalidates the tokens of its grant.
        tokens.revoke_family(token.family_id)
        audit.record("token.revoked", actor=f"client:{token.client_id}", commit=False,
                     subject=token.user.sub if token.user else None, client_id=token.client_id)
        db.session.commit()


class TokenIntrospection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = grants.CONFIDENTIAL_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        row = tokens.find_active_access_token(token_string)
        if row is not None:
            return _Introspected(row, "access_token")
        row = tokens.find_token(token_string, "refresh_token")
        if row is not None and row.refresh_used_at is None and not row.is_refresh_expired():
            return _Introspected(row, "refresh_token")
        return None

    def check_permission(self, token: Any, client: Client, request: OAuth2Request) -> bool:
        # A client may introspect its own tokens; a resource server needs the scope.
        return token.row.client_id == client.client_id or "introspect" in client.scope.split()

    def introspect_token(self, token: Any) -> dict[str, Any]:
        row: Token | tokens.AccessGrant = token.row
        payload: dict[str, Any] = {
            "active": True,
            "client_id": row.client_id,
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
            "scope": row.scope,
            "iat": to_epoch(row.issued_at),
            "iss": current_app.extensions["idp"].settings.server.issuer,
            "aud": row.client_id,
        }
        if isinstance(row, tokens.AccessGrant):
            payload["exp"] = to_epoch(row.access_expires_at)
            sub = row.sub
        else:
            if row.refresh_expires_at is not None:
                payload["exp"] = to_epoch(row.refresh_expires_at)
            sub = row.user.sub if row.user is not None else None
        if sub is not None:
            payload["sub"] = sub
        return payload


class _Introspected:
    """A token seen as one kind: an access token's grant, or a row as its refresh token."""

    def __init__(self, row: Token | tokens.AccessGrant, kind: str) -> None:
        self.row = row
        self.kind = kind

    def is_expired(self) -> bool:
        if isinstance(self.row, tokens.AccessGrant):
            return self.row.is_expired()
        return self.row.is_refresh_expired()

    def is_revoked(self) -> bool:
        return self.row.is_revoked()


class UserInfo(UserInfoEndpoint):
    """OIDC Core 5.3. authlib's endpoint parses the whole request into an OAuth2Request
    first, which userinfo never reads (the bearer token comes from the header through the
    resource protector): that was an eighth of each call, so it is skipped. Responses are
    never signed (no `userinfo_signed_response_alg` is registered or advertised)."""

    def create_endpoint_request(self, request: Any) -> None:
        return None

    def __call__(self, request: None) -> tuple[int, Any, list[tuple[str, str]]]:
        grant = self.resource_protector.acquire_token("openid")
        # A client_credentials token has no user (it crashed here with a 500), and a disabled
        # person's claims are not released: both answer like an invalid token (OIDC Core 5.3.3).
        if grant.person is None:
            raise InvalidTokenError(description="The access token does not represent a user.")
        extra: dict[str, Any] = {}
        if releases_portal_claims(grant.scope, grant.portal_id):
            # The contact and legacy lookups work on the person's and the portal's rows.
            person, portal = db.session.get(User, grant.user_id), db.session.get(
                Portal, grant.portal_id)
            if person is not None and portal is not None:
                extra = portal_claims(person, portal)
        return 200, standard_claims(grant.person, grant.scope, extra), default_json_headers


authorization_server = PortalAuthorizationServer()
resource_protector = ResourceProtector()


def init_oidc(app: Flask) -> None:
    """Wire grants, client authentication and endpoints into the module-level server."""
    authorization_server.init_app(app, query_client=query_client, save_token=tokens.save_token)
    authorization_server.register_token_generator("default", tokens.generate_bearer_token)
    authorization_server.scopes_supported = None  # unknown scopes are dropped, not refused
    if getattr(authorization_server, "_idp_wired", False):
        return  # the module-level server is wired once; later apps (tests) share the wiring
    authorization_server._idp_wired = True  # type: ignore[attr-defined]
    authorization_server.register_client_auth_method("private_key_jwt", PrivateKeyJWT())
    authorization_server.register_client_auth_method("client_secret_basic", client_secret_basic)
    authorization_server.register_grant(
        grants.AuthorizationCodeGrant,
        [
            grants.S256CodeChallenge(required=True),
            grants.OpenIDCode(require_nonce=False),
            grants.AuthorizationRequestRules(),
        ],
    )
    authorization_server.register_grant(grants.RefreshTokenGrant)
    authorization_server.register_grant(grants.ClientCredentialsGrant)
    authorization_server.register_endpoint(TokenRevocation)
    authorization_server.register_endpoint(TokenIntrospection)
    resource_protector.register_token_validator(AccessTokenValidator())
    authorization_server.register_endpoint(UserInfo(resource_protector=resource_protector))
    authorization_server.register_endpoint(EndSession)
