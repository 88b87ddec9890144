"""RP-Initiated Logout 1.0 on authlib's EndSessionEndpoint."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Request
from authlib.oidc.rpinitiated import EndSessionEndpoint
from flask import current_app
from joserfc.jwk import KeySet

from idp.login.sessions import current_session, end_idp_session
from idp.oidc.id_tokens import ID_TOKEN_ALGORITHMS, MAX_ID_TOKEN_HINT


class EndSession(EndSessionEndpoint):
    """authlib's RP-Initiated Logout endpoint bound to our keys and sessions."""

    def validate_request(self, request: OAuth2Request) -> Any:
        # The same size limit as at /authorize (idp.oidc.id_tokens), before any parsing.
        if len(request.payload.data.get("id_token_hint") or "") > MAX_ID_TOKEN_HINT:
            raise InvalidRequestError("id_token_hint is too large")
        return super().validate_request(request)

    def get_server_jwks(self) -> KeySet:
        return current_app.extensions["idp"].keys.public_keys()  # type: ignore[no-any-return]

    def get_algorithms(self) -> list[str]:
        return ID_TOKEN_ALGORITHMS

    def resolve_client_from_id_token_claims(self, id_token_claims: dict[str, Any]) -> Any:
        # Our ID tokens carry `aud` as a one-element list; authlib only resolves a string.
        aud = id_token_claims.get("aud")
        if isinstance(aud, list) and len(aud) == 1:
            aud = aud[0]
        return self.server.query_client(aud) if isinstance(aud, str) else None

    def end_session(self, end_session_request: Any) -> None:
        record = current_session()
        if record is not None:
            end_idp_session(record)
