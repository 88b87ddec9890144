"""Registering and changing client applications, with the redirect-URI rules of RFC 9700
and RFC 8252; one validation (`check_client_settings`) for the CLI, the console and the API.

A client secret is generated here, shown once, and stored only as its SHA-256. The
console shows a new secret on the page after its POST: `stage_secret_reveal` keeps it
encrypted on the server, bound to the staff member's IdP session, until `take_secret_reveal`
shows and deletes it (or `REVEAL_LIFETIME` passes).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, update

from idp import audit
from idp.admin.access import CONSOLE_CLIENT_ID
from idp.clock import utcnow
from idp.config import ConfigError
from idp.db import db
from idp.models import Client, Portal, Token
from idp.models.client import AUTH_METHODS, DEFAULT_SCOPE, GRANT_TYPES, ClientSecretReveal
from idp.portals import find_portal
from idp.security.secrets import generate_secret, hash_secret

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
SECRET_METHODS = ("client_secret_basic", "client_secret_post")
BUILT_IN_CLIENT_IDS = frozenset({CONSOLE_CLIENT_ID})
MAX_NAME, MAX_URI, MAX_URIS, MAX_SCOPE = 200, 2000, 20, 1000
# Bounds of a client's own token lifetimes, in seconds (None: the server's [tokens]).
ACCESS_TOKEN_LIFETIMES = (60, 86_400)  # one minute to one day (RFC 9700: short-lived)
REFRESH_TOKEN_LIFETIMES = (300, 31_536_000)  # five minutes to a year
REVEAL_LIFETIME = timedelta(minutes=10)
CLIENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]{1,100}$")  # RFC 6749 3.3
# Members of a private JWK: a client registers its public keys only.
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


class ClientRegistrationError(ValueError):
    """Invalid client metadata; `errors` maps each wrong field to why (the message lists all)."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{field}: {why}" for field, why in self.errors.items()))


class BuiltInClientError(ValueError):
    """The IdP's own clients (the admin console) are not changed by hand."""


@dataclass
class NewClient:
    client: Client
    client_secret: str | None  # shown once; only its hash is stored


@dataclass
class ClientUpdate:
    client: Client
    changed: list[str]  # the settings that changed, by name
    client_secret: str | None  # a new secret when the change needs one (shown once)


@dataclass(frozen=True)
class ClientSettings:
    """What a client's registration says, by the names the API and the console use."""

    name: str
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    backchannel_logout_uri: str | None = None
    portal: str | None = None  # the portal's slug
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token")
    scopes: tuple[str, ...] = tuple(DEFAULT_SCOPE.split())
    first_party: bool = False
    token_endpoint_auth_method: str = "client_secret_basic"
    jwks: dict[str, Any] | None = None
    access_token_lifetime: int | None = None
    refresh_token_lifetime: int | None = None

    @classmethod
    def of(cls, client: Client) -> ClientSettings:
        return cls(
            name=client.name,
            redirect_uris=tuple(client.redirect_uris),
            post_logout_redirect_uris=tuple(client.post_logout_redirect_uris),
            backchannel_logout_uri=client.backchannel_logout_uri,
            portal=client.portal.slug if client.portal is not None else None,
            grant_types=tuple(client.grant_types),
            scopes=tuple(client.scope.split()),
            first_party=client.first_party,
            token_endpoint_auth_method=client.token_endpoint_auth_method,
            jwks=client.jwks,
            access_token_lifetime=client.access_token_lifetime,
            refresh_token_lifetime=client.refresh_token_lifetime,
        )


SETTING_NAMES = tuple(f.name for f in dataclasses.fields(ClientSettings))


# -- validation -------------------------------------------------------------------------


def check_redirect_uri(uri: str, field: str = "redirect_uris") -> str:
    """https (http only on loopback) or a private-use scheme; no fragment, no wildcard."""
    why = _redirect_uri_problem(uri)
    if why:
        raise ClientRegistrationError({field: why})
    return uri


def _redirect_uri_problem(uri: str, *, web_only: bool = False) -> str | None:
    if len(uri) > MAX_URI:
        return f"at most {MAX_URI} characters"
    if any(c.isspace() or ord(c) < 32 for c in uri):
        return f"must not contain spaces or control characters: {uri!r}"
    if "*" in uri:
        return f"wildcards are not allowed: {uri}"
    try:
        parts = urlsplit(uri)
        hostname = parts.hostname
    except ValueError:
        return f"not a valid URL: {uri}"
    if parts.fragment or uri.endswith("#"):
        return f"must not contain a fragment: {uri}"
    if parts.scheme == "https" and hostname:
        return None
    if parts.scheme == "http" and hostname in LOOPBACK_HOSTS:
        return None
    # RFC 8252 7.1: native apps use a reverse-domain private-use scheme.
    if not web_only and parts.scheme and "." in parts.scheme:
        return None
    return f"must be an absolute https URL (http only for localhost): {uri}"


def check_client_settings(settings: ClientSettings) -> dict[str, str]:
    """Every problem of `settings`, by field (empty when there is none)."""
    settings = _normalised(settings)
    errors: dict[str, str] = {}

    def fail(field: str, why: str) -> None:
        errors.setdefault(field, why)

    if not settings.name.strip():
        fail("name", "must not be empty")
    elif len(settings.name.strip()) > MAX_NAME:
        fail("name", f"at most {MAX_NAME} characters")
    elif any(ord(c) < 32 or ord(c) == 127 for c in settings.name):
        fail("name", "must not contain control characters")
    if not settings.grant_types:
        fail("grant_types", "choose at least one")
    for grant in settings.grant_types:
        if grant not in GRANT_TYPES:
            fail("grant_types", f"unsupported: {grant}")
    signs_in = "authorization_code" in settings.grant_types
    for field in ("redirect_uris", "post_logout_redirect_uris"):
        uris: tuple[str, ...] = getattr(settings, field)
        if len(uris) > MAX_URIS:
            fail(field, f"at most {MAX_URIS}")
        for uri in uris:
            if why := _redirect_uri_problem(uri):
                fail(field, why)
    if signs_in and not settings.redirect_uris:
        fail("redirect_uris", "at least one is required for sign-in (authorization_code)")
    if settings.backchannel_logout_uri and (
            why := _redirect_uri_problem(settings.backchannel_logout_uri, web_only=True)):
        fail("backchannel_logout_uri", why)
    for scope in settings.scopes:
        if not SCOPE_TOKEN.fullmatch(scope):
            fail("scopes", f"not a valid scope name: {scope!r}")
    if not settings.scopes:
        fail("scopes", "at least one scope")
    elif len(" ".join(settings.scopes)) > MAX_SCOPE:
        fail("scopes", f"at most {MAX_SCOPE} characters together")
    method = settings.token_endpoint_auth_method
    if method not in AUTH_METHODS:
        fail("token_endpoint_auth_method", f"unsupported: {method}")
    if method == "none" and "client_credentials" in settings.grant_types:
        fail("grant_types", "public clients (no authentication) cannot use client_credentials")
    if method == "private_key_jwt" and not settings.jwks:
        fail("jwks", "private_key_jwt needs the client's public keys (a JWK Set)")
    if settings.jwks and (why := _jwks_problem(settings.jwks)):
        fail("jwks", why)
    for field, (low, high) in (("access_token_lifetime", ACCESS_TOKEN_LIFETIMES),
                               ("refresh_token_lifetime", REFRESH_TOKEN_LIFETIMES)):
        value = getattr(settings, field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not low <= value <= high):
            fail(field, f"a number of seconds from {low} to {high}, or empty for the "
                        "server's default")
    if settings.portal is not None and _portal(settings.portal) is None:
        fail("portal", f"no portal with slug {settings.portal!r}")
    return errors


def _jwks_problem(jwks: Any) -> str | None:
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not keys or not all(isinstance(k, dict) for k in keys):
        return 'a JWK Set: {"keys": [...]} with at least one key'
    if any(member in key for key in keys for member in PRIVATE_JWK_MEMBERS):
        return "contains a private key: register the public keys only"
    try:
        KeySet.import_key_set(jwks)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        return f"not a usable JWK Set: {exc}"
    return None


def _portal(slug: str) -> Portal | None:
    return find_portal(slug)


def _normalised(settings: ClientSettings) -> ClientSettings:
    """Trimmed strings, no duplicates, empty optional values as None."""
    return dataclasses.replace(
        settings,
        name=settings.name.strip(),
        redirect_uris=_unique(settings.redirect_uris),
        post_logout_redirect_uris=_unique(settings.post_logout_redirect_uris),
        backchannel_logout_uri=(settings.backchannel_logout_uri or "").strip() or None,
        portal=settings.portal or None,
        grant_types=_unique(settings.grant_types),
        scopes=_unique(settings.scopes),
        jwks=settings.jwks or None,
    )


def _unique(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for v in values if v.strip()))


# -- registering and changing ------------------------------------------------------------


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
    access_token_lifetime: int | None = None,
    refresh_token_lifetime: int | None = None,
    actor: str = "cli",
) -> NewClient:
    """Validate metadata, store the client, return it with its one-time secret."""
    method = auth_method or ("none" if public else "private_key_jwt" if jwks
                             else "client_secret_basic")
    settings = ClientSettings(
        name=name, redirect_uris=tuple(redirect_uris),
        post_logout_redirect_uris=tuple(post_logout_redirect_uris or ()),
        backchannel_logout_uri=backchannel_logout_uri, portal=portal_slug,
        grant_types=tuple(grant_types) if grant_types is not None
        else ClientSettings.grant_types,
        scopes=tuple(scopes) if scopes is not None else ClientSettings.scopes,
        first_party=first_party, token_endpoint_auth_method=method, jwks=jwks,
        access_token_lifetime=access_token_lifetime,
        refresh_token_lifetime=refresh_token_lifetime,
    )
    return create_client(settings, actor=actor, client_id=client_id,
                         client_secret=client_secret)


def create_client(settings: ClientSettings, actor: str = "cli", client_id: str | None = None,
                  client_secret: str | None = None) -> NewClient:
    """Store a client with `settings` (validated first); its secret is returned once."""
    settings = _normalised(settings)
    errors = check_client_settings(settings)
    if client_id is not None and not CLIENT_ID_PATTERN.fullmatch(client_id):
        errors["client_id"] = "1 to 64 letters, digits and . _ ~ -"
    elif client_id is not None and find_client(client_id) is not None:
        errors["client_id"] = f"{client_id!r} is already registered"
    if errors:
        raise ClientRegistrationError(errors)
    method = settings.token_endpoint_auth_method
    secret = (client_secret or generate_secret(32)) if method in SECRET_METHODS else None
    client = Client(client_id=client_id or generate_secret(16),
                    client_secret_hash=hash_secret(secret) if secret else None)
    _apply(client, settings)
    db.session.add(client)
    audit.record("client.created", actor=actor, subject=client.client_id, commit=False,
                 portal=settings.portal, name=client.name, auth_method=method,
                 grant_types=list(settings.grant_types))
    db.session.commit()
    return NewClient(client, secret)


def update_client(client_id: str, changes: dict[str, Any], actor: str = "cli") -> ClientUpdate:
    """Change any of a client's settings (names as in `ClientSettings`), validated as a whole.

    Moving to a secret-based authentication method generates a secret (returned, shown
    once); moving away from one forgets the old secret's hash.
    """
    client = _changeable(client_id)
    unknown = sorted(set(changes) - set(SETTING_NAMES))
    if unknown:
        raise ClientRegistrationError({key: "unknown client setting" for key in unknown})
    before = ClientSettings.of(client)
    after = _normalised(dataclasses.replace(before, **changes))
    errors = check_client_settings(after)
    if errors:
        raise ClientRegistrationError(errors)
    changed = [name for name in SETTING_NAMES if getattr(before, name) != getattr(after, name)]
    secret = None
    if after.token_endpoint_auth_method in SECRET_METHODS:
        if before.token_endpoint_auth_method not in SECRET_METHODS:
            secret = generate_secret(32)
            client.client_secret_hash = hash_secret(secret)
    else:
        client.client_secret_hash = None
    _apply(client, after)
    if changed:
        audit.record("client.updated", actor=actor, subject=client.client_id, commit=False,
                     portal=after.portal, fields=changed)
    db.session.commit()
    return ClientUpdate(client, changed, secret)


def _apply(client: Client, settings: ClientSettings) -> None:
    client.name = settings.name
    client.portal = _portal(settings.portal) if settings.portal else None
    client.redirect_uris = list(settings.redirect_uris)
    client.post_logout_redirect_uris = list(settings.post_logout_redirect_uris)
    client.backchannel_logout_uri = settings.backchannel_logout_uri
    client.grant_types = list(settings.grant_types)
    client.scope = " ".join(settings.scopes)
    client.first_party = settings.first_party
    client.token_endpoint_auth_method = settings.token_endpoint_auth_method
    client.jwks = settings.jwks
    client.access_token_lifetime = settings.access_token_lifetime
    client.refresh_token_lifetime = settings.refresh_token_lifetime


def disable_client(client_id: str, actor: str = "cli") -> Client:
    """The client stops working at once: unknown to the protocol, its tokens revoked."""
    client = _changeable(client_id)
    if client.disabled_at is None:
        now = client.disabled_at = utcnow()
        db.session.execute(update(Token).where(
            Token.client_id == client.client_id, Token.revoked_at.is_(None)
        ).values(revoked_at=now))
        audit.record("client.disabled", actor=actor, subject=client.client_id, commit=False,
                     portal=_slug(client))
        db.session.commit()
    return client


def enable_client(client_id: str, actor: str = "cli") -> Client:
    """The client works again (tokens revoked when it was disabled stay revoked)."""
    client = _changeable(client_id)
    if client.disabled_at is not None:
        client.disabled_at = None
        audit.record("client.enabled", actor=actor, subject=client.client_id, commit=False,
                     portal=_slug(client))
        db.session.commit()
    return client


def rotate_client_secret(client_id: str, actor: str = "cli") -> str:
    """A new secret replaces the old one at once; returned to be shown once.

    Tokens already issued stay valid until they expire; disable the client to end them.
    """
    client = _changeable(client_id)
    if client.token_endpoint_auth_method not in SECRET_METHODS:
        raise ClientRegistrationError({
            "token_endpoint_auth_method":
                f"{client.token_endpoint_auth_method} clients have no secret to rotate"})
    secret = generate_secret(32)
    client.client_secret_hash = hash_secret(secret)
    audit.record("client.secret_rotated", actor=actor, subject=client.client_id,
                 commit=False, portal=_slug(client))
    db.session.commit()
    return secret


def find_client(client_id: str) -> Client | None:
    """The client with `client_id`, enabled or not."""
    if not 0 < len(client_id) <= 64 or "\x00" in client_id:
        return None  # never stored (and PostgreSQL refuses NUL in a query)
    return db.session.execute(  # type: ignore[no-any-return]
        db.select(Client).filter_by(client_id=client_id)).scalar_one_or_none()


def is_built_in(client: Client) -> bool:
    return client.client_id in BUILT_IN_CLIENT_IDS


def _changeable(client_id: str) -> Client:
    client = find_client(client_id)
    if client is None:
        raise LookupError(client_id)
    if is_built_in(client):
        raise BuiltInClientError("The admin console's own client is managed by the IdP "
                                 "and cannot be changed.")
    return client


def _slug(client: Client) -> str | None:
    return client.portal.slug if client.portal is not None else None


# -- showing a new secret once (console) ------------------------------------------------


def stage_secret_reveal(client: Client, secret: str, session_id: str) -> str:
    """Keep `secret` for one showing in IdP session `session_id`; the id for its URL."""
    now = utcnow()
    db.session.execute(delete(ClientSecretReveal).where(ClientSecretReveal.expires_at <= now))
    reveal_id = generate_secret(24)
    encryptor = current_app.extensions["idp"].encryptor
    db.session.add(ClientSecretReveal(
        id_hash=hash_secret(reveal_id), client_id=client.id, session_id=session_id,
        secret_encrypted=encryptor.encrypt(secret.encode("utf-8")),
        expires_at=now + REVEAL_LIFETIME))
    db.session.commit()
    return reveal_id


def take_secret_reveal(reveal_id: str, client: Client, session_id: str) -> str | None:
    """The staged secret, once: deleted as it is read; None if gone, expired or not ours."""
    row = db.session.get(ClientSecretReveal, hash_secret(reveal_id))
    if row is None or row.client_id != client.id or row.session_id != session_id:
        return None
    # A conditional DELETE: of two concurrent requests, only one gets the secret.
    deleted = db.session.execute(delete(ClientSecretReveal).where(
        ClientSecretReveal.id_hash == row.id_hash)).rowcount  # type: ignore[attr-defined]
    db.session.commit()
    if deleted != 1 or utcnow() >= row.expires_at:
        return None
    try:
        return bytes(current_app.extensions["idp"].encryptor.decrypt(
            row.secret_encrypted)).decode("utf-8")
    except ConfigError:  # its key was removed meanwhile: as good as expired
        return None
