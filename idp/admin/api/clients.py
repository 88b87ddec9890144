"""Clients API: relying-party applications, registered, changed, disabled, re-keyed.

A client outside the API client's reach answers 404, as an unknown one does (a portal's
own API client sees only its portal's clients). The secret is in the response that makes
it (registration, rotation, or a change to a secret-based method) and nowhere else.
"""

from __future__ import annotations

from typing import Any

from flask import url_for

from idp.admin.api.pagination import paginate
from idp.admin.api.problems import ApiProblem, invalid
from idp.admin.api.registry import Param, operation
from idp.admin.api.schemas import (
    DATE_TIME,
    NULLABLE_DATE_TIME,
    PAGE_PARAMS,
    errors_of,
    page_of,
    timestamp,
)
from idp.admin.roles import CLIENTS_READ, CLIENTS_WRITE, Actor
from idp.clients import (
    ACCESS_TOKEN_LIFETIMES,
    MAX_NAME,
    MAX_URI,
    MAX_URIS,
    REFRESH_TOKEN_LIFETIMES,
    BuiltInClientError,
    ClientRegistrationError,
    disable_client,
    enable_client,
    find_client,
    is_built_in,
    register_client,
    rotate_client_secret,
    update_client,
)
from idp.db import db
from idp.models import Client, Portal
from idp.models.client import AUTH_METHODS, GRANT_TYPES

TAG = "clients"
CLIENT_ID = {"type": "string", "minLength": 1, "maxLength": 64}
SLUG = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"}
URI = {"type": "string", "minLength": 1, "maxLength": MAX_URI}
URIS = {"type": "array", "items": URI, "maxItems": MAX_URIS, "uniqueItems": True}
JWK = {"type": "object", "required": ["kty"], "properties": {"kty": {"type": "string"}}}
JWKS = {"type": ["object", "null"], "required": ["keys"], "additionalProperties": False,
        "properties": {"keys": {"type": "array", "items": JWK, "minItems": 1, "maxItems": 10}},
        "description": "Public keys for private_key_jwt (a JWK Set, RFC 7517)"}


def _lifetime(bounds: tuple[int, int], what: str) -> dict[str, Any]:
    return {"type": ["integer", "null"], "minimum": bounds[0], "maximum": bounds[1],
            "description": f"{what} lifetime in seconds; null: the server's default"}


SETTINGS: dict[str, dict[str, Any]] = {
    "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
    "portal": {"type": ["string", "null"], "maxLength": 64,
               "description": "Slug of the portal the client belongs to"},
    "redirect_uris": URIS,
    "post_logout_redirect_uris": URIS,
    "backchannel_logout_uri": {"type": ["string", "null"], "maxLength": MAX_URI},
    "grant_types": {"type": "array", "items": {"enum": list(GRANT_TYPES)}, "minItems": 1,
                    "uniqueItems": True},
    "scopes": {"type": "array", "minItems": 1, "maxItems": 30, "uniqueItems": True,
               "items": {"type": "string", "pattern": "^[\\x21\\x23-\\x5B\\x5D-\\x7E]{1,100}$"}},
    "first_party": {"type": "boolean", "description": "Trusted: no consent screen"},
    "token_endpoint_auth_method": {"enum": list(AUTH_METHODS)},
    "jwks": JWKS,
    "access_token_lifetime": _lifetime(ACCESS_TOKEN_LIFETIMES, "Access token"),
    "refresh_token_lifetime": _lifetime(REFRESH_TOKEN_LIFETIMES, "Refresh token"),
}

CLIENT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["client_id", *SETTINGS, "enabled", "disabled_at", "built_in", "created_at"],
    "properties": {
        "client_id": {"type": "string"},
        **SETTINGS,
        "jwks": {"type": ["object", "null"]},
        "enabled": {"type": "boolean"},
        "disabled_at": NULLABLE_DATE_TIME,
        "built_in": {"type": "boolean",
                     "description": "The IdP's own client (the admin console): read-only"},
        "created_at": DATE_TIME,
    },
}
WITH_SECRET = {
    **CLIENT,
    "required": [*CLIENT["required"], "client_secret"],
    "properties": {**CLIENT["properties"], "client_secret": {
        "type": ["string", "null"],
        "description": "Shown in this response only; null when the client has no secret"}},
}
NEW_CLIENT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "client_id": {"type": "string", "pattern": "^[A-Za-z0-9._~-]{1,64}$",
                      "description": "Chosen id (default: a random one)"},
        **SETTINGS,
    },
}
CLIENT_CHANGES = {"type": "object", "additionalProperties": False, "minProperties": 1,
                  "properties": SETTINGS}


@operation(
    "GET", "/clients", summary="List clients by name; `portal` keeps one portal's",
    tag=TAG, permission=CLIENTS_READ,
    query=(Param("portal", {"type": "string", "minLength": 1, "maxLength": 64},
                 "A portal's slug."), *PAGE_PARAMS),
    responses={200: ("A page of clients", page_of(CLIENT)), **errors_of(401, 403, 422)},
)
def list_clients(actor: Actor, query: dict[str, Any]) -> Any:
    statement = db.select(Client).order_by(Client.name, Client.id)
    allowed = actor.portal_ids(CLIENTS_READ)
    if allowed is not None:
        statement = statement.where(Client.portal_id.in_(allowed))
    if query["portal"]:
        statement = statement.join(Portal).where(Portal.slug == query["portal"])
    return paginate(statement, query, serialize_client)


@operation(
    "POST", "/clients", summary="Register a client; the response holds its secret, once",
    tag=TAG, permission=CLIENTS_WRITE, body=NEW_CLIENT,
    responses={201: ("The client, with its secret", WITH_SECRET),
               **errors_of(400, 401, 403, 409, 422)},
)
def create_client(actor: Actor, query: dict[str, Any], body: dict[str, Any]) -> Any:
    _check_portal(actor, body.get("portal"))
    try:
        new = register_client(
            name=body["name"], redirect_uris=body.get("redirect_uris", []),
            post_logout_redirect_uris=body.get("post_logout_redirect_uris"),
            backchannel_logout_uri=body.get("backchannel_logout_uri"),
            portal_slug=body.get("portal"), grant_types=body.get("grant_types"),
            scopes=body.get("scopes"), first_party=body.get("first_party", False),
            auth_method=body.get("token_endpoint_auth_method"), jwks=body.get("jwks"),
            access_token_lifetime=body.get("access_token_lifetime"),
            refresh_token_lifetime=body.get("refresh_token_lifetime"),
            client_id=body.get("client_id"), actor=actor.label)
    except ClientRegistrationError as exc:
        raise _problem(exc) from None
    location = url_for("admin_api.get_client", client_id=new.client.client_id)
    return ({**serialize_client(new.client), "client_secret": new.client_secret}, 201,
            {"Location": location})


@operation(
    "GET", "/clients/{client_id}", summary="One client", tag=TAG, permission=CLIENTS_READ,
    path_params={"client_id": CLIENT_ID},
    responses={200: ("The client", CLIENT), **errors_of(401, 403, 404)},
)
def get_client(actor: Actor, client_id: str, query: dict[str, Any]) -> Any:
    return serialize_client(_visible(actor, client_id, CLIENTS_READ))


@operation(
    "PATCH", "/clients/{client_id}",
    summary="Change a client's settings (all checked again, as at registration)",
    tag=TAG, permission=CLIENTS_WRITE, path_params={"client_id": CLIENT_ID},
    body=CLIENT_CHANGES,
    responses={200: ("The client; `client_secret` is set only when the change made one "
                     "(a move to client_secret_basic or client_secret_post)", WITH_SECRET),
               **errors_of(400, 401, 403, 404, 422)},
)
def patch_client(actor: Actor, client_id: str, query: dict[str, Any],
                 body: dict[str, Any]) -> Any:
    client = _visible(actor, client_id, CLIENTS_WRITE)
    if "portal" in body:
        _check_portal(actor, body["portal"])
    try:
        change = update_client(client.client_id, body, actor=actor.label)
    except BuiltInClientError as exc:
        raise ApiProblem(403, str(exc)) from None
    except ClientRegistrationError as exc:
        raise _problem(exc) from None
    return {**serialize_client(change.client), "client_secret": change.client_secret}


@operation(
    "POST", "/clients/{client_id}/disable",
    summary="Disable a client: it stops working at once and its tokens are revoked",
    tag=TAG, permission=CLIENTS_WRITE, path_params={"client_id": CLIENT_ID},
    responses={200: ("The client", CLIENT), **errors_of(401, 403, 404)},
)
def disable(actor: Actor, client_id: str, query: dict[str, Any]) -> Any:
    client = _visible(actor, client_id, CLIENTS_WRITE)
    try:
        return serialize_client(disable_client(client.client_id, actor=actor.label))
    except BuiltInClientError as exc:
        raise ApiProblem(403, str(exc)) from None


@operation(
    "POST", "/clients/{client_id}/enable", summary="Enable a disabled client again",
    tag=TAG, permission=CLIENTS_WRITE, path_params={"client_id": CLIENT_ID},
    responses={200: ("The client", CLIENT), **errors_of(401, 403, 404)},
)
def enable(actor: Actor, client_id: str, query: dict[str, Any]) -> Any:
    client = _visible(actor, client_id, CLIENTS_WRITE)
    try:
        return serialize_client(enable_client(client.client_id, actor=actor.label))
    except BuiltInClientError as exc:
        raise ApiProblem(403, str(exc)) from None


@operation(
    "POST", "/clients/{client_id}/rotate-secret",
    summary="A new secret replaces the old one at once; the response holds it, once",
    tag=TAG, permission=CLIENTS_WRITE, path_params={"client_id": CLIENT_ID},
    responses={200: ("The client, with its new secret", WITH_SECRET),
               **errors_of(401, 403, 404, 409)},
)
def rotate_secret(actor: Actor, client_id: str, query: dict[str, Any]) -> Any:
    client = _visible(actor, client_id, CLIENTS_WRITE)
    try:
        secret = rotate_client_secret(client.client_id, actor=actor.label)
    except BuiltInClientError as exc:
        raise ApiProblem(403, str(exc)) from None
    except ClientRegistrationError as exc:
        raise ApiProblem(409, str(exc)) from None
    return {**serialize_client(client), "client_secret": secret}


def serialize_client(client: Client) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "portal": client.portal.slug if client.portal is not None else None,
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "grant_types": list(client.grant_types),
        "scopes": client.scope.split(),
        "first_party": client.first_party,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "jwks": client.jwks,
        "access_token_lifetime": client.access_token_lifetime,
        "refresh_token_lifetime": client.refresh_token_lifetime,
        "enabled": client.disabled_at is None,
        "disabled_at": timestamp(client.disabled_at),
        "built_in": is_built_in(client),
        "created_at": timestamp(client.created_at),
    }



def _visible(actor: Actor, client_id: str, permission: str) -> Client:
    """The client if `actor` may do `permission` on it; 404 for one out of reach."""
    client = find_client(client_id)
    allowed = actor.portal_ids(permission)
    if client is None or (allowed is not None and client.portal_id not in allowed):
        raise ApiProblem(404, f"No client {client_id!r}.")
    return client


def _check_portal(actor: Actor, slug: str | None) -> None:
    """A portal's API client registers clients for its own portal only."""
    allowed = actor.portal_ids(CLIENTS_WRITE)
    if allowed is None:
        return
    portal = db.session.execute(db.select(Portal).filter_by(slug=slug)).scalar_one_or_none() \
        if slug else None
    if portal is None or portal.id not in allowed:
        raise invalid("The client must belong to your portal.",
                      [{"field": "portal", "message": "must be your own portal's slug"}])


def _problem(error: ClientRegistrationError) -> ApiProblem:
    if "client_id" in error.errors and "already" in error.errors["client_id"]:
        return ApiProblem(409, str(error))
    return invalid("A client setting is invalid.",
                   [{"field": field, "message": why} for field, why in error.errors.items()])
