"""The OpenID Provider Metadata document (OIDC Discovery 1.0, RFC 8414), built once per app."""

from __future__ import annotations

from typing import Any

from flask import Flask

from idp.login.transaction import ACR_VALUES
from idp.oidc.client_auth import ASSERTION_ALGORITHMS
from idp.oidc.grants import CONFIDENTIAL_AUTH_METHODS, TOKEN_AUTH_METHODS
from idp.oidc.id_tokens import ID_TOKEN_ALGORITHMS
from idp.oidc.server import SCOPES_SUPPORTED

CLAIMS_SUPPORTED = [
    "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid",
    "name", "email", "email_verified", "phone_number", "phone_number_verified",
    "preferred_username", "contact_id", "legacy_usernames",
]


def build_metadata(app: Flask, issuer: str) -> dict[str, Any]:
    """Endpoint URLs come from the URL map, so they always match the routes."""

    def url(endpoint: str) -> str:
        for rule in app.url_map.iter_rules(endpoint):
            return issuer + rule.rule
        raise LookupError(endpoint)

    return {
        "issuer": issuer,
        "authorization_endpoint": url("oidc.authorize"),
        "token_endpoint": url("oidc.token"),
        "userinfo_endpoint": url("oidc.userinfo"),
        "jwks_uri": url("oidc.jwks"),
        "end_session_endpoint": url("oidc.logout"),
        "revocation_endpoint": url("oidc.revoke"),
        "introspection_endpoint": url("oidc.introspect"),
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ID_TOKEN_ALGORITHMS,
        "token_endpoint_auth_methods_supported": TOKEN_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "revocation_endpoint_auth_methods_supported": TOKEN_AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": CONFIDENTIAL_AUTH_METHODS,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": CLAIMS_SUPPORTED,
        "acr_values_supported": list(ACR_VALUES),
        "prompt_values_supported": ["none", "login", "consent"],
        "ui_locales_supported": ["en"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
    }
