"""What the three demo portals share: sign-in with authlib's Flask client, claims, sign-out.

A portal knows the IdP only by its issuer URL (discovery) and its client id and secret;
it imports nothing from `idp`. Each portal keeps its sign-ins in a small server-side store
(the portal's own cookie holds an opaque id only) and checks on every request whether
the IdP ended the session behind a sign-in (Back-Channel Logout 1.0: the IdP POSTs a
logout token naming the session's `sid`). An in-memory store per process is enough for a
demo; a real portal would keep it in its database or cache.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any
from urllib.parse import urlencode

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, g, redirect, render_template, request, session, url_for
from jinja2 import DictLoader
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
SHOWN_CLAIMS = ("sub", "email", "acr", "amr", "contact_id", "preferred_username")
LOGOUT_TOKEN_MAX_AGE = 300  # seconds; older logout tokens are refused (replay)
SIGNIN_KEY = "signin"


@dataclass(frozen=True)
class PortalSettings:
    """Where the portal runs and how it knows the IdP; nothing is read from the environment."""

    base_url: str
    issuer: str
    client_id: str
    client_secret: str
    secret_key: str | None = None  # signs the portal's own cookie; random when None
    scope: str = "openid profile email"
    # Other demo portals linked from the footer: (name, URL) pairs.
    neighbours: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Brand:
    key: str  # short name: the portal's cookie is "<key>_session"
    name: str
    tagline: str
    colour: str


@dataclass
class SignIn:
    """One person signed in at this portal, from the ID token it received."""

    claims: dict[str, Any]
    id_token: str
    signed_in_at: float = field(default_factory=time.time)

    @property
    def sid(self) -> str | None:
        return self.claims.get("sid")

    @property
    def display_name(self) -> str:
        return str(self.claims.get("name") or self.claims.get("email")
                   or self.claims.get("preferred_username") or self.claims["sub"])


class SessionStore:
    """Sign-ins by opaque id, and the IdP sessions that back-channel logout ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._signins: dict[str, SignIn] = {}
        self._ended_sids: set[str] = set()
        self._ended_subs: dict[str, float] = {}  # sub -> logout token's iat

    def add(self, signin: SignIn) -> str:
        key = secrets.token_urlsafe(24)
        with self._lock:
            self._signins[key] = signin
        return key

    def get(self, key: str | None) -> SignIn | None:
        """The live sign-in for `key`; one whose IdP session has ended is dropped."""
        if not key:
            return None
        with self._lock:
            signin = self._signins.get(key)
            if signin is None:
                return None
            ended_for_sub = self._ended_subs.get(signin.claims["sub"], 0.0)
            if signin.sid in self._ended_sids or signin.signed_in_at <= ended_for_sub:
                del self._signins[key]
                return None
            return signin

    def remove(self, key: str | None) -> SignIn | None:
        with self._lock:
            return self._signins.pop(key, None) if key else None

    def end(self, sid: str | None, sub: str | None, issued_at: float) -> None:
        """Back-Channel Logout 2.7: end the session `sid`, or every session of `sub`."""
        with self._lock:
            if sid:
                self._ended_sids.add(sid)
            elif sub:
                self._ended_subs[sub] = max(issued_at, self._ended_subs.get(sub, 0.0))


LAYOUT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}{{ brand.name }}{% endblock %}</title>
<style>
:root { --brand: {{ brand.colour }}; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: #1d2430; background: #f4f6f9; }
header.top { background: var(--brand); color: #fff; padding: .75rem 1rem; }
header.top .inner, main, footer { max-width: 52rem; margin: 0 auto; }
header.top .inner { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center;
                    justify-content: space-between; }
header.top a { color: #fff; }
.site-name { font-size: 1.25rem; font-weight: 700; margin: 0; }
.site-name a { text-decoration: none; }
.tagline { margin: 0; opacity: .9; font-size: .9rem; }
.who { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; }
main { padding: 1rem; }
section.card { background: #fff; border-radius: .5rem; padding: 1rem 1.25rem; margin: 1rem 0;
               box-shadow: 0 1px 3px rgba(0,0,0,.12); }
h1 { font-size: 1.5rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.15rem; margin: 0 0 .5rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #e1e5eb;
         vertical-align: top; overflow-wrap: anywhere; }
th { width: 1%; white-space: nowrap; font-weight: 600; }
@media (max-width: 30rem) {
  th, td { display: block; width: auto; }
  th { border-bottom: 0; padding-bottom: 0; }
}
code, pre { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .9rem; }
pre { background: #f3f5f8; padding: .75rem; overflow: auto; }
.button, button { display: inline-block; background: var(--brand); color: #fff; border: 0;
                  border-radius: .35rem; padding: .5rem 1rem; font: inherit;
                  text-decoration: none; cursor: pointer; }
header.top .button, header.top button { background: #fff; color: var(--brand); }
.button:focus-visible, button:focus-visible, a:focus-visible { outline: 3px solid #ffbf47;
                                                              outline-offset: 2px; }
form.inline { display: inline; margin: 0; }
.notice { background: #fff7e0; border-left: 4px solid #e0a800; padding: .5rem .75rem; }
.muted { color: #5a6372; }
ul.items { padding-left: 1.25rem; }
footer { padding: 1rem; font-size: .9rem; color: #5a6372; }
footer a { color: inherit; }
</style>
</head>
<body>
<header class="top">
  <div class="inner">
    <div>
      <p class="site-name"><a href="{{ url_for('home') }}">{{ brand.name }}</a></p>
      <p class="tagline">{{ brand.tagline }}</p>
    </div>
    <div class="who">
    {% if signin %}
      <span>Signed in as <strong>{{ signin.display_name }}</strong></span>
      <form class="inline" method="post" action="{{ url_for('logout') }}">
        <button type="submit">Sign out</button>
      </form>
    {% else %}
      <a class="button" href="{{ url_for('login', next=request.path) }}">Sign in</a>
    {% endif %}
    </div>
  </div>
</header>
<main>
{% if message %}<p class="notice" role="status">{{ message }}</p>{% endif %}
{% block content %}{% endblock %}
{% if signin %}
<section class="card" aria-labelledby="claims-heading">
  <h2 id="claims-heading">Who is signed in: the claims {{ brand.name }} received</h2>
  <table>
    <tbody>
    {% for name in shown_claims %}
      <tr><th scope="row">{{ name }}</th>
          <td data-claim="{{ name }}">
            {%- if name in signin.claims %}{{ claim_text(signin.claims[name]) }}
            {%- else %}<span class="muted">(not sent)</span>{% endif %}</td></tr>
    {% endfor %}
    </tbody>
  </table>
  <details>
    <summary>Every claim of the ID token</summary>
    <pre id="claims-json">{{ claims_json }}</pre>
  </details>
</section>
{% endif %}
</main>
<footer>
  Demo portal: a relying party of the Portal IdP at <a href="{{ issuer }}">{{ issuer }}</a>.
  {% if neighbours %}Other demo portals:
  {% for name, url in neighbours -%}
    <a href="{{ url }}">{{ name }}</a>{{ ", " if not loop.last }}
  {%- endfor %}.{% endif %}
</footer>
</body>
</html>
"""

SIGNED_OUT = """{% extends "layout.html" %}
{% block title %}Signed out · {{ brand.name }}{% endblock %}
{% block content %}
<h1>You are signed out</h1>
<section class="card">
  <p>You are signed out of {{ brand.name }} and of every portal that uses the same sign-in.</p>
  <p><a class="button" href="{{ url_for('login') }}">Sign in again</a></p>
</section>
{% endblock %}
"""

SIGN_IN_FAILED = """{% extends "layout.html" %}
{% block title %}Sign-in did not finish · {{ brand.name }}{% endblock %}
{% block content %}
<h1>Sign-in did not finish</h1>
<section class="card">
  <p>The sign-in service answered: <code>{{ error }}</code>{% if description %}
  ({{ description }}){% endif %}.</p>
  <p><a class="button" href="{{ url_for('login') }}">Try again</a></p>
</section>
{% endblock %}
"""


def create_portal_app(brand: Brand, settings: PortalSettings,
                      templates: dict[str, str]) -> Flask:
    """A portal: its pages (`templates`, extending "layout.html") are added by the caller.

    Routes: `/login`, `/callback`, `/logout` (POST), `/signed-out`, `/backchannel-logout`
    (POST); the caller adds `/` (endpoint "home") and its own pages.
    """
    app = Flask(brand.key)
    app.config.update(
        SECRET_KEY=settings.secret_key or secrets.token_hex(32),
        # Every demo portal runs on 127.0.0.1, and cookies ignore ports: one name each.
        SESSION_COOKIE_NAME=f"{brand.key}_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.jinja_loader = DictLoader({"layout.html": LAYOUT, "signed_out.html": SIGNED_OUT,
                                   "sign_in_failed.html": SIGN_IN_FAILED, **templates})
    store = SessionStore()
    app.extensions["portal"] = store
    oauth = OAuth(app)
    idp = oauth.register(
        "idp",
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        server_metadata_url=f"{settings.issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": settings.scope, "code_challenge_method": "S256"},
    )

    def metadata() -> dict[str, Any]:
        return idp.load_server_metadata()  # type: ignore[no-any-return]

    @app.before_request
    def load_signin() -> None:
        # Checked on every request: a back-channel logout ends the sign-in here.
        g.signin = store.get(session.get(SIGNIN_KEY))
        if g.signin is None:
            session.pop(SIGNIN_KEY, None)

    @app.context_processor
    def page_context() -> dict[str, Any]:
        signin: SignIn | None = g.get("signin")
        return {
            "brand": brand,
            "signin": signin,
            "issuer": settings.issuer,
            "neighbours": settings.neighbours,
            "shown_claims": SHOWN_CLAIMS,
            "claim_text": claim_text,
            "claims_json": json.dumps(signin.claims, indent=2, sort_keys=True) if signin else "",
        }

    @app.get("/login")
    def login() -> Any:
        after = request.args.get("next", "")
        # Only paths of this portal (no open redirect).
        session["next"] = after if after.startswith("/") and not after.startswith("//") else "/"
        return idp.authorize_redirect(f"{settings.base_url}/callback")

    @app.get("/callback")
    def callback() -> Any:
        if "error" in request.args:
            return render_template("sign_in_failed.html", error=request.args["error"],
                                   description=request.args.get("error_description")), 400
        try:
            # Validates the ID token: signature (JWKS), iss, aud, exp, nonce, at_hash.
            token = idp.authorize_access_token()
        except OAuthError as exc:
            return render_template("sign_in_failed.html", error=exc.error,
                                   description=exc.description), 400
        session[SIGNIN_KEY] = store.add(SignIn(dict(token["userinfo"]), token["id_token"]))
        return redirect(session.pop("next", None) or url_for("home"))

    @app.post("/logout")
    def logout() -> Any:
        signin = store.remove(session.pop(SIGNIN_KEY, None))
        state = secrets.token_urlsafe(16)
        session["logout_state"] = state
        params = {"post_logout_redirect_uri": f"{settings.base_url}/signed-out",
                  "client_id": settings.client_id, "state": state}
        if signin is not None:
            params["id_token_hint"] = signin.id_token
        return redirect(f"{metadata()['end_session_endpoint']}?{urlencode(params)}")

    @app.get("/signed-out")
    def signed_out() -> Any:
        expected = session.pop("logout_state", None)
        if request.args.get("state") and request.args["state"] != expected:
            return render_template("sign_in_failed.html", error="invalid_state",
                                   description="this sign-out was not started here"), 400
        return render_template("signed_out.html")

    @app.post("/backchannel-logout")
    def backchannel_logout() -> Any:
        try:
            claims = check_logout_token(request.form.get("logout_token", ""), settings,
                                        metadata()["jwks_uri"])
        except (JoseError, ValueError) as exc:
            # Back-Channel Logout 2.8: 400 with an error; the IdP logs it.
            return {"error": "invalid_request", "error_description": str(exc)}, 400, \
                {"Cache-Control": "no-store"}
        store.end(claims.get("sid"), claims.get("sub"), float(claims["iat"]))
        return "", 200, {"Cache-Control": "no-store"}

    return app


def check_logout_token(token: str, settings: PortalSettings, jwks_uri: str) -> dict[str, Any]:
    """The claims of a valid Logout Token (Back-Channel Logout 2.6), else ValueError."""
    if not token:
        raise ValueError("no logout_token")
    keys = KeySet.import_key_set(requests.get(jwks_uri, timeout=5).json())
    decoded = jwt.decode(token, keys, algorithms=["RS256", "ES256"])
    claims = dict(decoded.claims)
    if decoded.header.get("typ") not in (None, "logout+jwt"):
        raise ValueError("typ: not a logout token")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    now = time.time()
    if claims.get("iss") != settings.issuer:
        raise ValueError("iss: not our IdP")
    if settings.client_id not in audiences:
        raise ValueError("aud: not for this portal")
    if not isinstance(claims.get("iat"), int | float) or \
            not now - LOGOUT_TOKEN_MAX_AGE <= claims["iat"] <= now + 60:
        raise ValueError("iat: missing or out of range")
    if "exp" in claims and claims["exp"] < now:
        raise ValueError("exp: expired")
    if BACKCHANNEL_EVENT not in (claims.get("events") or {}):
        raise ValueError("events: no back-channel logout event")
    if not claims.get("sid") and not claims.get("sub"):
        raise ValueError("neither sid nor sub")
    if "nonce" in claims:
        raise ValueError("nonce: forbidden in a logout token")
    return claims


def claim_text(value: Any) -> str:
    """A claim's value as the page shows it: lists joined by commas."""
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def signin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """A page behind sign-in: without one, off to /login and back here afterwards."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.get("signin") is None:
            return redirect(url_for("login", next=request.path))
        return view(*args, **kwargs)

    return wrapped


def run(app: Flask, base_url: str) -> None:
    """Serve `app` on the port of `base_url` (a development server, like `idp serve`)."""
    port = int(base_url.rsplit(":", 1)[1].split("/")[0])
    app.run(host="127.0.0.1", port=port, threaded=True, use_reloader=False)
