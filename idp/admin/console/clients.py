"""Console pages for clients: list, register, edit, disable, enable, rotate the secret.

Validation is idp.clients' (the same as the CLI and the API); this module only reads the
form and decides who may see what. A client out of the staff member's reach answers 404,
as an unknown one does. A new secret is shown once, on the page after the POST
(idp.clients.stage_secret_reveal), which is never cached.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from flask import current_app, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from idp.admin.console import bp
from idp.admin.console.pages import Forbidden, console_page, done, nav_item, render
from idp.admin.roles import CLIENTS_READ, CLIENTS_WRITE, Actor
from idp.clients import (
    ACCESS_TOKEN_LIFETIMES,
    REFRESH_TOKEN_LIFETIMES,
    SECRET_METHODS,
    BuiltInClientError,
    ClientRegistrationError,
    ClientSettings,
    check_client_settings,
    create_client,
    disable_client,
    enable_client,
    find_client,
    is_built_in,
    rotate_client_secret,
    stage_secret_reveal,
    take_secret_reveal,
    update_client,
)
from idp.db import db
from idp.errors import NotFound
from idp.login.sessions import current_session
from idp.models import Client, Portal
from idp.models.client import AUTH_METHODS, GRANT_TYPES
from idp.security.csrf import check_csrf

nav_item("clients_list", "Clients", CLIENTS_READ,
         "Applications that sign people in: redirect URIs, secrets, token lifetimes.")

GRANT_LABELS = {
    "authorization_code": "Sign-in (authorization code with PKCE)",
    "refresh_token": "Refresh tokens (stay signed in without asking again)",
    "client_credentials": "Service access (client credentials: the client acts for itself)",
}
AUTH_METHOD_LABELS = {
    "client_secret_basic": "Client secret, sent with HTTP Basic authentication",
    "client_secret_post": "Client secret, sent in the form body",
    "private_key_jwt": "A JWT signed with the client's private key (no shared secret)",
    "none": "None: a public client (mobile or browser app; PKCE protects its sign-ins)",
}
assert set(GRANT_LABELS) == set(GRANT_TYPES) and set(AUTH_METHOD_LABELS) == set(AUTH_METHODS)


# -- who sees what ----------------------------------------------------------------------


def may(actor: Actor, permission: str, portal_id: int | None) -> bool:
    """`permission` on things of `portal_id`; things of no portal need it everywhere."""
    if portal_id is None:
        return actor.is_global(permission)
    return actor.can(permission, portal_id)


def visible_client(actor: Actor, client_id: str, permission: str = CLIENTS_READ) -> Client:
    """The client, if `actor` may do `permission` on it; 404 otherwise (even if it exists)."""
    client = find_client(client_id)
    if client is None or not may(actor, CLIENTS_READ, client.portal_id):
        raise NotFound("There is no client with this id.")
    if not may(actor, permission, client.portal_id):
        raise Forbidden("Your role does not allow changing this client.")
    return client


def portal_choices(actor: Actor, permission: str) -> list[Portal]:
    """The portals `actor` may do `permission` for, by name."""
    statement = db.select(Portal).order_by(Portal.name)
    allowed = actor.portal_ids(permission)
    if allowed is not None:
        statement = statement.where(Portal.id.in_(allowed))
    return list(db.session.execute(statement).scalars())


def _changeable(actor: Actor, client_id: str) -> Client:
    client = visible_client(actor, client_id, CLIENTS_WRITE)
    if is_built_in(client):
        raise Forbidden("The admin console's own client is managed by the IdP and cannot "
                        "be changed here.")
    return client


# -- list and details -------------------------------------------------------------------


@bp.get("/clients")
@console_page(CLIENTS_READ)
def clients_list(actor: Actor) -> str:
    portals = portal_choices(actor, CLIENTS_READ)
    statement = db.select(Client).order_by(Client.name, Client.id)
    allowed = actor.portal_ids(CLIENTS_READ)
    if allowed is not None:
        statement = statement.where(Client.portal_id.in_(allowed))
    chosen = request.args.get("portal", "")
    if chosen:
        statement = statement.join(Portal).where(Portal.slug == chosen)
    clients = list(db.session.execute(statement).scalars())
    return render("clients/list", actor, clients=clients, portals=portals, chosen=chosen,
                  auth_labels=AUTH_METHOD_LABELS, can_write=actor.can(CLIENTS_WRITE))


@bp.get("/clients/<client_id>")
@console_page(CLIENTS_READ)
def clients_show(actor: Actor, client_id: str) -> str:
    client = visible_client(actor, client_id)
    return render("clients/show", actor, c=client, built_in=is_built_in(client),
                  can_write=may(actor, CLIENTS_WRITE, client.portal_id),
                  has_secret=client.token_endpoint_auth_method in SECRET_METHODS,
                  grant_labels=GRANT_LABELS, auth_labels=AUTH_METHOD_LABELS,
                  defaults=_server_lifetimes())


# -- register and edit ------------------------------------------------------------------


@bp.route("/clients/new", methods=["GET", "POST"])
@console_page(CLIENTS_WRITE)
def clients_new(actor: Actor) -> Response | str | tuple[str, int]:
    portals = portal_choices(actor, CLIENTS_WRITE)
    if request.method == "GET":
        first = ClientSettings(name="", portal=portals[0].slug if len(portals) == 1 else None)
        return _form(actor, None, _values_of(first), {}, portals)
    check_csrf()
    values, errors = read_client_form(request.form)
    settings = dataclasses.replace(ClientSettings(name=""), **values)
    errors = {**check_client_settings(settings), **errors, **_portal_error(actor, settings)}
    if errors:
        return _form(actor, None, request.form, errors, portals), 422
    try:
        new = create_client(settings, actor=actor.label)
    except ClientRegistrationError as exc:  # changed meanwhile (a portal removed)
        return _form(actor, None, request.form, exc.errors, portals), 422
    if new.client_secret:
        return _reveal(new.client, new.client_secret)
    return done("console.clients_show", "Client registered.", client_id=new.client.client_id)


@bp.route("/clients/<client_id>/edit", methods=["GET", "POST"])
@console_page(CLIENTS_WRITE)
def clients_edit(actor: Actor, client_id: str) -> Response | str | tuple[str, int]:
    client = _changeable(actor, client_id)
    portals = portal_choices(actor, CLIENTS_WRITE)
    current = ClientSettings.of(client)
    if request.method == "GET":
        return _form(actor, client, _values_of(current), {}, portals)
    check_csrf()
    values, errors = read_client_form(request.form)
    settings = dataclasses.replace(current, **values)
    errors = {**check_client_settings(settings), **errors, **_portal_error(actor, settings)}
    if errors:
        return _form(actor, client, request.form, errors, portals), 422
    try:
        change = update_client(client.client_id, values, actor=actor.label)
    except ClientRegistrationError as exc:
        return _form(actor, client, request.form, exc.errors, portals), 422
    if change.client_secret:
        return _reveal(change.client, change.client_secret)
    notice = "Saved." if change.changed else "Nothing changed."
    return done("console.clients_show", notice, client_id=client.client_id)


def read_client_form(form: MultiDict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's values as `ClientSettings` fields, and what could not be read at all."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {
        "name": form.get("name", ""),
        "portal": form.get("portal", "") or None,
        "redirect_uris": tuple(form.get("redirect_uris", "").split()),
        "post_logout_redirect_uris": tuple(form.get("post_logout_redirect_uris", "").split()),
        "backchannel_logout_uri": form.get("backchannel_logout_uri", "").strip() or None,
        "grant_types": tuple(form.getlist("grant_types")),
        "scopes": tuple(form.get("scopes", "").split()),
        "first_party": form.get("first_party") == "yes",
        "token_endpoint_auth_method": form.get("token_endpoint_auth_method", ""),
    }
    jwks_text = form.get("jwks", "").strip()
    values["jwks"] = None
    if jwks_text:
        try:
            values["jwks"] = json.loads(jwks_text)
        except ValueError:
            errors["jwks"] = 'not valid JSON: paste the JWK Set, {"keys": [...]}'
    for field in ("access_token_lifetime", "refresh_token_lifetime"):
        text = form.get(field, "").strip()
        values[field] = None
        if text:
            try:
                values[field] = int(text)
            except ValueError:
                errors[field] = "a whole number of seconds, or empty for the server's default"
    return values, errors


def _portal_error(actor: Actor, settings: ClientSettings) -> dict[str, str]:
    """A portal administrator registers clients for their own portal only."""
    if actor.portal_ids(CLIENTS_WRITE) is None:
        return {}
    slugs = {p.slug for p in portal_choices(actor, CLIENTS_WRITE)}
    if settings.portal not in slugs:
        return {"portal": "choose your portal"}
    return {}


def _values_of(settings: ClientSettings) -> dict[str, Any]:
    """What the form shows for `settings` (the same shape as a submitted form)."""
    return {
        "name": settings.name,
        "portal": settings.portal or "",
        "redirect_uris": "\n".join(settings.redirect_uris),
        "post_logout_redirect_uris": "\n".join(settings.post_logout_redirect_uris),
        "backchannel_logout_uri": settings.backchannel_logout_uri or "",
        "grant_types": list(settings.grant_types),
        "scopes": " ".join(settings.scopes),
        "first_party": "yes" if settings.first_party else "",
        "token_endpoint_auth_method": settings.token_endpoint_auth_method,
        "jwks": json.dumps(settings.jwks, indent=2) if settings.jwks else "",
        "access_token_lifetime": _text(settings.access_token_lifetime),
        "refresh_token_lifetime": _text(settings.refresh_token_lifetime),
    }


def _text(value: int | None) -> str:
    return "" if value is None else str(value)


def _form(actor: Actor, client: Client | None, values: Any, errors: dict[str, str],
          portals: list[Portal]) -> str:
    grant_types = (values.getlist("grant_types") if isinstance(values, MultiDict)
                   else values["grant_types"])
    return render("clients/form", actor, c=client, values=values, grant_types=grant_types,
                  errors=errors, portals=portals,
                  portal_required=actor.portal_ids(CLIENTS_WRITE) is not None,
                  grant_labels=GRANT_LABELS, auth_labels=AUTH_METHOD_LABELS,
                  defaults=_server_lifetimes(), access_bounds=ACCESS_TOKEN_LIFETIMES,
                  refresh_bounds=REFRESH_TOKEN_LIFETIMES)


def _server_lifetimes() -> dict[str, int]:
    tokens = current_app.extensions["idp"].settings.tokens
    return {"access_token_lifetime": tokens.access_token_lifetime,
            "client_credentials_lifetime": tokens.client_credentials_lifetime,
            "refresh_token_lifetime": tokens.refresh_token_lifetime}


# -- disable, enable, rotate ------------------------------------------------------------


@bp.post("/clients/<client_id>/disable")
@console_page(CLIENTS_WRITE)
def clients_disable(actor: Actor, client_id: str) -> Response:
    check_csrf()
    client = _changeable(actor, client_id)
    disable_client(client.client_id, actor=actor.label)
    return done("console.clients_show", "Client disabled: it can no longer sign anyone in, "
                "and its tokens were revoked.", client_id=client.client_id)


@bp.post("/clients/<client_id>/enable")
@console_page(CLIENTS_WRITE)
def clients_enable(actor: Actor, client_id: str) -> Response:
    check_csrf()
    client = _changeable(actor, client_id)
    enable_client(client.client_id, actor=actor.label)
    return done("console.clients_show", "Client enabled.", client_id=client.client_id)


@bp.post("/clients/<client_id>/rotate-secret")
@console_page(CLIENTS_WRITE)
def clients_rotate_secret(actor: Actor, client_id: str) -> Response:
    check_csrf()
    client = _changeable(actor, client_id)
    try:
        secret = rotate_client_secret(client.client_id, actor=actor.label)
    except (ClientRegistrationError, BuiltInClientError) as exc:
        raise Forbidden(str(exc)) from None
    return _reveal(client, secret)


# -- the secret, once -------------------------------------------------------------------


def _reveal(client: Client, secret: str) -> Response:
    record = current_session()
    assert record is not None  # console_page signed the staff member in with it
    reveal_id = stage_secret_reveal(client, secret, record.id)
    return done("console.clients_secret", client_id=client.client_id, reveal_id=reveal_id)


@bp.get("/clients/<client_id>/secret/<reveal_id>")
@console_page(CLIENTS_WRITE)
def clients_secret(actor: Actor, client_id: str, reveal_id: str) -> Response:
    client = visible_client(actor, client_id, CLIENTS_WRITE)
    record = current_session()
    secret = take_secret_reveal(reveal_id, client, record.id) if record else None
    if secret is None:
        page = render("clients/secret_gone", actor, c=client)
        response = Response(page, status=410, mimetype="text/html")
    else:
        page = render("clients/secret", actor, c=client, secret=secret,
                      show_url=url_for("console.clients_show", client_id=client.client_id))
        response = Response(page, mimetype="text/html")
    # Never kept by the browser or a proxy: the Back button must not show it again.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
