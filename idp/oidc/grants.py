"""authlib grants and extensions, configured for Portal IdP's rules.

- authorization_code with PKCE (S256 only; required for public clients) and OpenID Connect,
- refresh_token with rotation and family revocation on reuse,
- client_credentials for service clients.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Request,
    grants,
    scope_to_list,
)
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import grants as oidc_grants
from flask import current_app
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from idp.clock import to_epoch, utcnow
from idp.db import db
from idp.models import AuthorizationCode, Client, Token, User
from idp.oidc import tokens
from idp.oidc.claims import user_claims
from idp.oidc.memo import per_request
from idp.oidc.responses import authorization_response, response_mode_of
from idp.security.secrets import hash_secret

TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
CONFIDENTIAL_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
UNSUPPORTED_REQUEST_PARAMETERS = ("request", "request_uri", "registration")


def _idp() -> Any:
    return current_app.extensions["idp"]


# Statements built once (building one costs about as much as running it), and the code
# comes with its person: the token response needs both.
_CODE = db.select(AuthorizationCode).options(joinedload(AuthorizationCode.user)).where(
    AuthorizationCode.code_hash == bindparam("code_hash"),
    AuthorizationCode.client_id == bindparam("client_id"))


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    """The code flow; the finished login transaction is in `request.login`."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def create_authorization_response(self, redirect_uri: str, grant_user: User | None) -> Any:
        """Issue the code and answer by query or form_post, with `iss` (RFC 9207)."""
        if not grant_user:
            raise AccessDeniedError(redirect_uri=redirect_uri)
        self.request.user = grant_user
        code = self.generate_authorization_code()
        self.save_authorization_code(code, self.request)
        params = [("code", code)]
        if self.request.payload.state:
            params.append(("state", self.request.payload.state))
        return authorization_response(redirect_uri, params, response_mode_of(self.request))

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        login = request.login  # type: ignore[attr-defined]
        data = request.payload.data
        now = utcnow()
        db.session.add(
            AuthorizationCode(
                code_hash=hash_secret(code),
                client_id=request.client.client_id,
                user_id=request.user.id,
                session_id=login.session_id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope,
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                issued_at=now,
                expires_at=now + timedelta(seconds=_idp().settings.tokens.code_lifetime),
                auth_time=login.auth_time,
                acr=login.acr,
                amr=list(login.amr),
            )
        )
        db.session.commit()

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        row = db.session.execute(_CODE, {"code_hash": hash_secret(code),
                                         "client_id": client.client_id}).scalar_one_or_none()
        if row is None:
            return None
        if row.used_at is not None:
            _refuse_replayed_code(row)
        if utcnow() >= row.expires_at:
            return None
        return row

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        # Codes are kept, marked used, so that a replay can be recognised and punished.
        pass

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User | None:
        if not tokens.claim_authorization_code(authorization_code):
            _refuse_replayed_code(authorization_code)
        user = authorization_code.user
        return user if user.is_active else None


def _refuse_replayed_code(row: AuthorizationCode) -> None:
    tokens.revoke_tokens_of_code(row)
    db.session.commit()
    raise InvalidGrantError("The authorization code has already been used.")


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """Rotating refresh tokens (RFC 9700 4.14.2)."""

    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        row = tokens.find_token(refresh_token, "refresh_token")
        if row is None:
            return None
        if row.refresh_used_at is not None:
            _refuse_reused_refresh_token(row)
        if row.is_revoked() or row.is_refresh_expired():
            return None
        if not tokens.outlives_session(row) and not tokens.session_is_live(row) \
                and not tokens.kept_by_trusted_browser(row):
            # Without offline_access a refresh token ends with its session, unless the
            # sign-in passed MFA on a browser trusted for a period (tokens.py has the rule).
            return None
        return row

    def authenticate_user(self, refresh_token: Token) -> User | None:
        if not tokens.claim_refresh_token(refresh_token):
            _refuse_reused_refresh_token(refresh_token)
        user = refresh_token.user
        return user if user is not None and user.is_active else None

    def revoke_old_credential(self, refresh_token: Token) -> None:
        # Already marked used by `claim_refresh_token`; its access token expires on its own.
        pass

    # RFC 6749 6: a requested scope is checked against, and an omitted one defaults to, the
    # scope the resource owner granted. A row's `scope` is its access token's, which an
    # earlier narrowing refresh shrank, so authlib's own check (against the row) would make
    # one narrowing permanent for the whole family.
    def _validate_token_scope(self, token: Token) -> None:
        requested = set(scope_to_list(self.request.payload.scope) or [])
        if requested and not requested <= set(scope_to_list(_granted_scope(token)) or []):
            raise InvalidScopeError()

    def issue_token(self, user: User, refresh_token: Token) -> dict[str, Any]:
        return self.generate_token(  # type: ignore[no-any-return]
            user=user,
            scope=self.request.payload.scope or _granted_scope(refresh_token),
            include_refresh_token=self.INCLUDE_NEW_REFRESH_TOKEN,
        )


_CODE_SCOPE = select(AuthorizationCode.scope).where(AuthorizationCode.id == bindparam("id"))


def _granted_scope(token: Token) -> str:
    """The scope granted to the token's family: that of the code it descends from."""
    if token.authorization_code_id is not None:
        scope = per_request(("granted_scope", token.authorization_code_id),
                            lambda: db.session.scalar(
                                _CODE_SCOPE, {"id": token.authorization_code_id}))
        if scope is not None:
            return str(scope)
    return token.scope


def _refuse_reused_refresh_token(row: Token) -> None:
    tokens.revoke_family(row.family_id)
    db.session.commit()
    raise InvalidGrantError("The refresh token has already been used.")


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    """Service clients acting on their own behalf."""

    TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_AUTH_METHODS

    def generate_token(self, user: Any = None, scope: str | None = None, **kwargs: Any) -> Any:
        # authlib issues the requested scope verbatim; RFC 6749 3.3 lets us narrow it, and we
        # must: a service client gets only scopes registered for it (like /authorize does).
        scope = self.request.client.get_allowed_scope(scope)
        return super().generate_token(user=user, scope=scope, **kwargs)


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only (RFC 9700 2.1.1); public clients must use it."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if grant.request.client.is_public and not data.get("code_challenge"):
            raise InvalidRequestError("Public clients must send a PKCE 'code_challenge' (S256).")
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256; 'plain' is refused.")
        super().validate_code_challenge(grant, redirect_uri)


_id_token_client: ContextVar[Client | None] = ContextVar("id_token_client", default=None)


_NONCE_USED = db.select(AuthorizationCode.id).where(
    AuthorizationCode.client_id == bindparam("client_id"),
    AuthorizationCode.nonce == bindparam("nonce")).limit(1)


class OpenIDCode(oidc_grants.OpenIDCode):
    """ID tokens for the code flow, signed with the active key."""

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        # authlib checks twice while issuing one code (consent, then response): ask once.
        client_id = request.payload.client_id
        return per_request(("nonce", client_id, nonce), lambda: db.session.execute(
            _NONCE_USED, {"client_id": client_id, "nonce": nonce}).first() is not None)

    def get_client_algorithm(self, client: Client) -> str:
        return client.id_token_signed_response_alg or _idp().settings.tokens.signing_alg

    def resolve_client_private_key(self, client: Client) -> Any:
        return _idp().keys.signing_key(self.get_client_algorithm(client))

    def get_encode_header(self, client: Client) -> dict[str, str]:
        key = self.resolve_client_private_key(client)
        return {"alg": self.get_client_algorithm(client), "kid": key.kid, "typ": "JWT"}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        now = to_epoch(utcnow())
        return {
            "iss": _idp().settings.server.issuer,
            "aud": [client.client_id],
            "iat": now,
            "exp": now + _idp().settings.tokens.id_token_lifetime,
        }

    def get_authorization_code_claims(self, authorization_code: AuthorizationCode) -> dict:
        claims = super().get_authorization_code_claims(authorization_code)
        if authorization_code.session_id:
            claims["sid"] = authorization_code.session_id  # Back-Channel Logout 2.1
        return claims

    def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> Any:
        # authlib's `generate_user_info(user, scope)` does not see the client, and some
        # claims are per portal: the client travels beside the call for its duration.
        previous = _id_token_client.set(request.client)
        try:
            return super().encode_id_token(token, request)
        finally:
            _id_token_client.reset(previous)

    def generate_user_info(self, user: User, scope: str) -> dict[str, Any]:
        return dict(user_claims(user, scope, _id_token_client.get()))


MAX_NONCE_LENGTH = 500


class AuthorizationRequestRules:
    """Checks authlib leaves to us: unsupported OIDC parameters, `max_age`, `response_mode`."""

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_validate_authorization_request_payload", self.check)

    def check(self, grant: Any, _result: Any = None) -> None:
        data = grant.request.payload.data
        for name in UNSUPPORTED_REQUEST_PARAMETERS:
            if data.get(name):
                raise _oidc_error(f"{name}_not_supported", f"'{name}' is not supported.")
        max_age = data.get("max_age")
        # ASCII digits only: str.isdigit() accepts "²" (int() then fails: a 500) and "٣".
        # An empty value counts as omitted (RFC 6749 3.1).
        if max_age and not re.fullmatch(r"[0-9]{1,10}", max_age):
            raise InvalidRequestError("'max_age' must be a non-negative integer.")
        if response_mode_of(grant.request) not in ("query", "form_post"):
            raise InvalidRequestError("'response_mode' must be 'query' or 'form_post'.")
        # The code's row keeps the nonce (authorization_codes.nonce); PostgreSQL refuses a
        # longer value at the insert: a 500 (found by tests/security/test_fuzz_authorize.py).
        if len(data.get("nonce") or "") > MAX_NONCE_LENGTH:
            raise InvalidRequestError(f"'nonce' is too long (at most {MAX_NONCE_LENGTH} "
                                      "characters).")


def _oidc_error(error: str, description: str) -> InvalidRequestError:
    exc = InvalidRequestError(description)
    exc.error = error
    return exc
