"""The demo portal of `make run`: sign in, see your claims, sign out (front and back channel).

It imports nothing from `idp`: like any portal, it knows the IdP by its discovery URL.
Run: python -m clients.demo_portal  (IdP on :5000 first; see README).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlencode

import requests
from authlib.integrations.flask_client import OAuth
from flask import Flask, redirect, render_template_string, request, session, url_for
from joserfc import jwt
from joserfc.jwk import KeySet

ISSUER = os.environ.get("DEMO_ISSUER", "http://127.0.0.1:5000")
BASE_URL = os.environ.get("DEMO_BASE_URL", "http://127.0.0.1:5001")
CLIENT_ID = os.environ.get("DEMO_CLIENT_ID", "demo-portal")
CLIENT_SECRET = os.environ.get("DEMO_CLIENT_SECRET", "demo-portal-secret")

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Demo Portal</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}
pre{background:#f3f5f8;padding:1rem;overflow:auto}</style></head><body>
<h1>Demo Portal</h1>
{% if claims %}
  <p>Signed in as <strong>{{ claims.get("email") }}</strong>.</p>
  <h2>Claims in the ID token</h2><pre>{{ claims_json }}</pre>
  <p><a href="{{ url_for('logout') }}">Sign out</a></p>
{% else %}
  <p>You are not signed in.</p><p><a href="{{ url_for('login') }}">Sign in</a></p>
{% endif %}
</body></html>"""


def create_portal() -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=os.environ.get("DEMO_SECRET_KEY", os.urandom(24).hex()),
                      SESSION_COOKIE_NAME="demo_portal_session")
    ended_sids: set[str] = set()  # sessions ended by back-channel logout (demo: in memory)
    oauth = OAuth(app)
    idp = oauth.register(
        "idp", client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
        server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email", "code_challenge_method": "S256"},
    )

    def signed_in_claims() -> dict[str, Any] | None:
        claims = session.get("claims")
        if claims and claims.get("sid") in ended_sids:
            session.clear()
            return None
        return claims  # type: ignore[no-any-return]

    @app.get("/")
    def home() -> str:
        import json

        claims = signed_in_claims()
        return render_template_string(PAGE, claims=claims,
                                      claims_json=json.dumps(claims, indent=2) if claims else "")

    @app.get("/login")
    def login() -> Any:
        return idp.authorize_redirect(f"{BASE_URL}/callback")

    @app.get("/callback")
    def callback() -> Any:
        token = idp.authorize_access_token()
        session["claims"] = dict(token["userinfo"])
        session["id_token"] = token["id_token"]
        return redirect(url_for("home"))

    @app.get("/logout")
    def logout() -> Any:
        hint = session.pop("id_token", None)
        session.clear()
        end_session = idp.load_server_metadata()["end_session_endpoint"]
        params = {"post_logout_redirect_uri": f"{BASE_URL}/", "client_id": CLIENT_ID}
        if hint:
            params["id_token_hint"] = hint
        return redirect(f"{end_session}?{urlencode(params)}")

    @app.post("/backchannel-logout")
    def backchannel_logout() -> Any:
        keys = KeySet.import_key_set(
            requests.get(idp.load_server_metadata()["jwks_uri"], timeout=5).json()
        )
        token = jwt.decode(request.form.get("logout_token", ""), keys,
                           algorithms=["RS256", "ES256"])
        if token.claims.get("iss") == ISSUER and token.claims.get("aud") == CLIENT_ID:
            ended_sids.add(str(token.claims.get("sid")))
        return "", 200

    return app


if __name__ == "__main__":
    port = int(BASE_URL.rsplit(":", 1)[1])
    create_portal().run(host="127.0.0.1", port=port)
