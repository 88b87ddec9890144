"""Client authentication: private_key_jwt (OIDC Core 9, RFC 7523) with strict JOSE rules,
and HTTP Basic that treats a malformed header as a failed authentication."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc6749.authenticate_client import authenticate_client_secret_basic
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from flask import current_app, url_for
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.exc import IntegrityError

from idp.clock import utcnow
from idp.db import db
from idp.models import Client, UsedAssertion
from idp.security.secrets import hash_secret

# Asymmetric algorithms only: never HS* (key confusion) and never `none`.
ASSERTION_ALGORITHMS = ["RS256", "PS256", "ES256"]
# Headers that would let the token choose its own verification key or semantics.
FORBIDDEN_HEADERS = ("jwk", "jku", "x5u", "x5c", "crit")
MAX_ASSERTION_LENGTH = 8192


# authlib's reader of HTTP Basic credentials raises ValueError on "Basic " without
# credentials, base64 with non-ASCII characters and credentials that are not UTF-8:
# a 500 for a malformed header (found by tests/security/test_fuzz_token.py).
def basic_credentials(headers: Any) -> tuple[str | None, str | None]:
    """(client_id, client_secret) of HTTP Basic (RFC 6749 2.3.1); Nones when malformed."""
    try:
        return extract_basic_authorization(headers)  # type: ignore[no-any-return]
    except ValueError:
        return None, None


def client_secret_basic(query_client: Any, request: Any) -> Client | None:
    """authlib's client_secret_basic, failing (401) on a malformed Authorization header."""
    try:
        return authenticate_client_secret_basic(query_client, request)  # type: ignore[no-any-return]
    except ValueError:
        return None


class PrivateKeyJWT(JWTBearerClientAssertion):
    """Clients sign an assertion with a key whose public half they registered."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __call__(self, query_client: Any, request: Any) -> Client | None:
        assertion = request.form.get("client_assertion")
        if assertion and len(assertion) > MAX_ASSERTION_LENGTH:
            raise InvalidClientError(description="The client assertion is too large.")
        return super().__call__(query_client, request)  # type: ignore[no-any-return]

    def get_audiences(self) -> list[str]:
        issuer = current_app.extensions["idp"].settings.server.issuer
        return [issuer, issuer + url_for("oidc.token")]

    def resolve_client_public_key(self, client: Client) -> KeySet:
        if not client.jwks:
            raise InvalidClientError(description="The client has no registered keys.")
        return KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except (JoseError, ValueError) as exc:
            raise InvalidClientError(description="The client assertion is not valid.") from exc
        if any(name in token.header for name in FORBIDDEN_HEADERS):
            raise InvalidClientError(description="The client assertion has a forbidden header.")
        self.verify_claims(token.claims)
        return token.claims

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        """Each assertion is usable once (RFC 7523 3 item 7)."""
        now = utcnow()
        digest = hash_secret(f"{claims['sub']}:{jti}")
        db.session.execute(db.delete(UsedAssertion).where(UsedAssertion.expires_at < now))
        if db.session.get(UsedAssertion, digest) is not None:
            return False
        expires = _expiry(claims.get("exp"), now)
        db.session.add(UsedAssertion(jti_hash=digest, client_id=claims["sub"], expires_at=expires))
        # Commit now, not with the rest of the request: an assertion is spent once it has
        # authenticated, even if the request then fails (or, like introspection, never
        # commits). The primary key makes a concurrent second use lose.
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            return False
        return True


def _expiry(exp: Any, now: datetime) -> datetime:
    try:
        return datetime.fromtimestamp(int(exp), UTC).replace(tzinfo=None) + timedelta(minutes=5)
    except (TypeError, ValueError, OverflowError, OSError):
        return now + timedelta(hours=1)
