"""Grace Church, a ministry portal (port 5003).

Its login policy at the IdP (`idp init --demo`): people create their own account when the
church's directory has them (`self_registration=match_only`, with the church's own
"not found" message); "Keep me signed in" for up to 90 days.
Run alone: python -m clients.ministry_portal  (the IdP on :5000 first; `make run` starts all).
"""

from __future__ import annotations

from flask import Flask, render_template

from clients.common import Brand, PortalSettings, create_portal_app, run

ISSUER = "http://127.0.0.1:5000"
BASE_URL = "http://127.0.0.1:5003"
CLIENT_ID = "grace-church"
CLIENT_SECRET = "grace-church-demo-secret"  # development only (`idp init --demo`)
BRAND = Brand("ministry", "Grace Church", "My Portal: groups, giving and serving", "#2e6b3a")

HOME = """{% extends "layout.html" %}
{% block content %}
{% if signin %}
<h1>My Portal</h1>
<section class="card">
  <h2>Your groups and giving</h2>
  <ul class="items">
    <li>Small group: Tuesday evenings, Fellowship Room</li>
    <li>Serving: welcome team, first Sunday of the month</li>
    <li>Giving statement for this year: ready to download</li>
  </ul>
  {% if "contact_id" in signin.claims %}<p class="muted">Church directory record
  {{ signin.claims.contact_id }}.</p>{% endif %}
</section>
{% else %}
<h1>Welcome to Grace Church</h1>
<section class="card">
  <p>Sign in to see your groups, your serving schedule and your giving statements.</p>
  <p><a class="button" href="{{ url_for('login') }}">Sign in</a></p>
  <p>New here? Choose <strong>Sign in</strong>, then <strong>New user? Create an
  account</strong>. If the church directory has your email address, you choose a password
  and you're in.</p>
</section>
{% endif %}
{% endblock %}
"""


def create_app(settings: PortalSettings | None = None) -> Flask:
    """The portal at `settings.base_url` (default: the demo's fixed ports and client)."""
    settings = settings or PortalSettings(BASE_URL, ISSUER, CLIENT_ID, CLIENT_SECRET)
    app = create_portal_app(BRAND, settings, {"home.html": HOME})

    @app.get("/")
    def home() -> str:
        return render_template("home.html")

    return app


if __name__ == "__main__":
    run(create_app(), BASE_URL)
