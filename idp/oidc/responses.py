"""Authorization responses (success and error) by query or form_post, always with `iss`."""

from __future__ import annotations

from typing import Any

from authlib.common.urls import add_params_to_uri
from flask import current_app, render_template

RESPONSE_MODES = ("query", "form_post")


def response_mode_of(request: Any) -> str:
    """The requested response mode; `query` is the code flow's default."""
    return request.payload.data.get("response_mode") or "query"


def authorization_response(
    redirect_uri: str, params: list[tuple[str, str]], response_mode: str
) -> tuple[int, str, list[tuple[str, str]]]:
    """(status, body, headers) delivering `params` to the client, plus `iss` (RFC 9207 2)."""
    params = [*params, ("iss", current_app.extensions["idp"].settings.server.issuer)]
    if response_mode == "form_post":
        # OAuth 2.0 Form Post Response Mode: the browser POSTs the values to the client.
        body = render_template("oidc/form_post.html", redirect_uri=redirect_uri, params=params)
        return 200, body, [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Cache-Control", "no-store"),
        ]
    return 302, "", [("Location", add_params_to_uri(redirect_uri, params))]
