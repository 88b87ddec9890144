"""A real relying party for end-to-end tests: authlib's Flask OAuth client, discovery-driven.

It knows the IdP only by its discovery URL, like any portal would, and records what it
received (tokens, claims, back-channel logout tokens) for the test to inspect.
"""

from __future__ import annotations

from typing import Any

import requests
from authlib.integrations.flask_client import OAuth
from flask import Flask, jsonify, redirect, request, session, url_for
from joserfc import jwt
from joserfc.jwk import KeySet

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def create_relying_party(
    base_url: str, issuer: str, client_id: str, client_secret: str
) -> tuple[Flask, dict[str, Any]]:
    """The RP app and its record of what happened."""
    app = Flask("relying_party")
    app.config.update(SECRET_KEY="rp-test-secret", SESSION_COOKIE_NAME="rp_session")
    record: dict[str, Any] = {"logout_tokens": [], "post_logout": []}
    oauth = OAuth(app)
    idp = oauth.register(
        "idp",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email", "code_challenge_method": "S256"},
    )

    def metadata() -> dict[str, Any]:
        return idp.load_server_metadata()  # type: ignore[no-any-return]

    @app.get("/login")
    def login() -> Any:
        return idp.authorize_redirect(f"{base_url}/callback")

    @app.get("/callback")
    def callback() -> Any:
        # Validates the ID token: signature against the JWKS, iss, aud, nonce, at_hash.
        token = idp.authorize_access_token()
        record["token"] = token
        record["claims"] = dict(token["userinfo"])
        return jsonify(record["claims"])

    @app.get("/me")
    def me() -> Any:
        return jsonify(dict(idp.userinfo(token=record["token"])))

    @app.get("/refresh")
    def refresh() -> Any:
        old = record["token"]
        client = idp._get_oauth_client()  # the same requests session the app uses
        new = client.refresh_token(metadata()["token_endpoint"], refresh_token=old["refresh_token"])
        record["previous_token"], record["token"] = old, dict(new)
        return jsonify({"refreshed": True})

    @app.get("/revoke")
    def revoke() -> Any:
        client = idp._get_oauth_client()
        response = client.revoke_token(
            metadata()["revocation_endpoint"], record["token"]["access_token"],
            token_type_hint="access_token",
        )
        return jsonify({"status": response.status_code})

    @app.get("/logout")
    def logout() -> Any:
        state = "bye-123"
        session["logout_state"] = state
        params = {
            "id_token_hint": record["token"]["id_token"],
            "post_logout_redirect_uri": f"{base_url}/signed-out",
            "state": state,
        }
        request_url = requests.Request("GET", metadata()["end_session_endpoint"], params=params)
        return redirect(request_url.prepare().url)

    @app.get("/signed-out")
    def signed_out() -> Any:
        record["post_logout"].append(dict(request.args))
        return "signed out of the relying party"

    @app.post("/backchannel-logout")
    def backchannel_logout() -> Any:
        keys = KeySet.import_key_set(requests.get(metadata()["jwks_uri"], timeout=5).json())
        token = jwt.decode(request.form["logout_token"], keys, algorithms=["RS256", "ES256"])
        claims = token.claims
        assert token.header.get("typ") == "logout+jwt"
        assert claims["iss"] == issuer and claims["aud"] == client_id
        assert BACKCHANNEL_EVENT in claims["events"] and "nonce" not in claims
        record["logout_tokens"].append(claims)
        return "", 200

    app.add_url_rule("/", "home", lambda: url_for("login"))
    return app, record
