"""Registering client applications, with the redirect-URI rules of RFC 9700 and RFC 8252."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from idp import audit
from idp.db import db
from idp.models import Client, Portal
from idp.models.client import AUTH_METHODS, DEFAULT_SCOPE, GRANT_TYPES
from idp.security.secrets import generate_secret, hash_secret

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class ClientRegistrationError(ValueError):
    """Invalid client metadata; the message says which field and why."""


@dataclass
class NewClient:
    client: Client
    client_secret: str | None  # shown once; only its hash is stored


def check_redirect_uri(uri: str, field: str = "redirect_uri") -> str:
    """https (http only on loopback) or a private-use scheme; no fragment, no wildcard."""
    parts = urlsplit(uri)
    if "*" in uri:
        raise ClientRegistrationError(f"{field}: wildcards are not allowed: {uri}")
    if parts.fragment or uri.endswith("#"):
        raise ClientRegistrationError(f"{field}: must not contain a fragment: {uri}")
    if parts.scheme == "https" and parts.hostname:
        return uri
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return uri
    # RFC 8252 7.1: native apps use a reverse-domain private-use scheme.
    if parts.scheme and "." in parts.scheme and parts.scheme not in ("http", "https"):
        return uri
    raise ClientRegistrationError(
        f"{field}: must be an absolute https URL (http only for localhost): {uri}"
    )


def register_client(
    *,
    name: str,
    redirect_uris: list[str],
    public: bool = False,
    post_logout_redirect_uris: list[str] | None = None,
    backchannel_logout_uri: str | None = None,
    portal_slug: str | None = None,
    grant_types: list[str] | None = None,
    scopes: list[str] | None = None,
    first_party: bool = False,
    auth_method: str | None = None,
    jwks: dict[str, Any] | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    actor: str = "cli",
) -> NewClient:
    """Validate metadata, store the client, return it with its one-time secret."""
    if not name.strip():
        raise ClientRegistrationError("name: must not be empty")
    grant_types = grant_types or ["authorization_code", "refresh_token"]
    for grant in grant_types:
        if grant not in GRANT_TYPES:
            raise ClientRegistrationError(f"grant_type: unsupported: {grant}")
    if "authorization_code" in grant_types and not redirect_uris:
        raise ClientRegistrationError("redirect_uri: at least one is required for sign-in")
    redirect_uris = [check_redirect_uri(u) for u in redirect_uris]
    post_logout = [
        check_redirect_uri(u, "post_logout_redirect_uri") for u in post_logout_redirect_uris or []
    ]
    if backchannel_logout_uri:
        check_redirect_uri(backchannel_logout_uri, "backchannel_logout_uri")
    method = auth_method or ("none" if public else "private_key_jwt" if jwks
                             else "client_secret_basic")
    if method not in AUTH_METHODS:
        raise ClientRegistrationError(f"auth_method: unsupported: {method}")
    if method == "none" and "client_credentials" in grant_types:
        raise ClientRegistrationError("grant_type: public clients cannot use client_credentials")
    if method == "private_key_jwt" and not jwks:
        raise ClientRegistrationError("jwks: private_key_jwt needs the client's public keys")
    portal = None
    if portal_slug:
        portal = db.session.execute(
            db.select(Portal).filter_by(slug=portal_slug)
        ).scalar_one_or_none()
        if portal is None:
            raise ClientRegistrationError(f"portal: no portal with slug {portal_slug!r}")
    client_id = client_id or generate_secret(16)
    if db.session.execute(db.select(Client.id).filter_by(client_id=client_id)).first():
        raise ClientRegistrationError(f"client_id: {client_id!r} is already registered")
    secret = None
    if method in ("client_secret_basic", "client_secret_post"):
        secret = client_secret or generate_secret(32)
    client = Client(
        client_id=client_id,
        client_secret_hash=hash_secret(secret) if secret else None,
        name=name.strip(),
        portal=portal,
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=post_logout,
        backchannel_logout_uri=backchannel_logout_uri,
        grant_types=grant_types,
        scope=" ".join(scopes) if scopes else DEFAULT_SCOPE,
        token_endpoint_auth_method=method,
        jwks=jwks,
        first_party=first_party,
    )
    db.session.add(client)
    audit.record("client.created", actor=actor, subject=client.client_id, commit=False,
                 portal=portal.slug if portal else None, name=client.name,
                 auth_method=method, grant_types=grant_types)
    db.session.commit()
    return NewClient(client, secret)
