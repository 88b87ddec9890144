"""HTTP endpoints of the OpenID provider."""

from __future__ import annotations

from authlib.oauth2.rfc6749 import OAuth2Error
from flask import Blueprint, current_app, jsonify, render_template, request
from werkzeug.wrappers import Response

from idp.errors import InvalidRequest
from idp.login import flow
from idp.login.sessions import current_session
from idp.oidc.client_throttle import throttled_client_auth
from idp.oidc.server import authorization_server
from idp.security.csrf import check_csrf

bp = Blueprint("oidc", __name__)

# Browser-based clients (oidc-client-ts, SPAs) call these from their own origin without
# cookies, so any origin may read them. Never the authorization or logout endpoints.
CORS_ENDPOINTS = {"oidc.discovery", "oidc.jwks", "oidc.token", "oidc.userinfo", "oidc.revoke"}


@bp.after_request
def allow_cross_origin(response: Response) -> Response:
    if request.endpoint in CORS_ENDPOINTS:
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST"
        response.headers["Access-Control-Max-Age"] = "600"
    return response


@bp.get("/.well-known/openid-configuration")
def discovery() -> Response:
    runtime = current_app.extensions["idp"]
    if not runtime.metadata_json:  # rendered once: the metadata is fixed at start-up
        runtime.metadata_json = jsonify(runtime.metadata).get_data()
    response = Response(runtime.metadata_json, mimetype="application/json")
    response.cache_control.public = True
    response.cache_control.max_age = 3600
    return response


@bp.get("/jwks")
def jwks() -> Response:
    keys = current_app.extensions["idp"].keys
    response = Response(keys.jwks_json(), mimetype="application/json")
    response.cache_control.public = True
    response.cache_control.max_age = 300
    return response


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> Response:
    """OIDC Core 3.1.2.1: GET and POST; the request is validated before anything is shown."""
    return flow.begin_authorization()


@bp.post("/token")
@throttled_client_auth
def token() -> Response:
    return authorization_server.create_token_response()  # type: ignore[no-any-return]


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    return authorization_server.create_endpoint_response("userinfo")  # type: ignore[no-any-return]


@bp.post("/revoke")
@throttled_client_auth
def revoke() -> Response:
    return authorization_server.create_endpoint_response("revocation")  # type: ignore[no-any-return]


@bp.post("/introspect")
@throttled_client_auth
def introspect() -> Response:
    return authorization_server.create_endpoint_response(  # type: ignore[no-any-return]
        "introspection"
    )


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Response | str:
    """RP-Initiated Logout: with a valid id_token_hint at once, otherwise after a confirmation."""
    try:
        end_request = authorization_server.validate_endpoint_request("end_session")
    except OAuth2Error as error:
        raise InvalidRequest(error.description or error.error) from None
    if end_request.needs_confirmation:
        if request.method == "POST" and request.form.get("confirm") == "yes":
            check_csrf()
        elif current_session() is not None:
            return render_template(
                "oidc/logout_confirm.html", client=end_request.client, params=request.values
            )
    response = authorization_server.create_endpoint_response("end_session", end_request)
    return response or render_template("oidc/logged_out.html", client=end_request.client)
