"""Reading ID tokens we issued (id_token_hint) and signing logout tokens."""

from __future__ import annotations

from typing import Any

from flask import current_app
from joserfc import jwt
from joserfc.errors import JoseError

ID_TOKEN_ALGORITHMS = ["RS256", "ES256"]
# Far above any ID token we issue; a bigger "hint" is refused before it is parsed.
MAX_ID_TOKEN_HINT = 16384


class InvalidIdTokenHint(ValueError):
    pass


def read_id_token_hint(hint: str) -> dict[str, Any]:
    """Claims of an ID token this server signed; expiry is not checked (OIDC Core 3.1.2.1)."""
    idp = current_app.extensions["idp"]
    if len(hint) > MAX_ID_TOKEN_HINT:
        raise InvalidIdTokenHint("id_token_hint is too large")
    try:
        token = jwt.decode(hint, idp.keys.public_keys(), algorithms=ID_TOKEN_ALGORITHMS)
    except (JoseError, ValueError) as exc:
        raise InvalidIdTokenHint("id_token_hint was not issued by this server") from exc
    if token.claims.get("iss") != idp.settings.server.issuer:
        raise InvalidIdTokenHint("id_token_hint was not issued by this server")
    return dict(token.claims)


def sign_jwt(claims: dict[str, Any], typ: str = "JWT") -> str:
    """Sign `claims` with the server's default algorithm and active key."""
    idp = current_app.extensions["idp"]
    alg = idp.settings.tokens.signing_alg
    key = idp.keys.signing_key(alg)
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": typ}, claims, key, algorithms=[alg])
