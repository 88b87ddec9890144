"""Lakeside MLS, a real-estate consumer portal: saved searches behind sign-in (port 5001).

Its login policy at the IdP (`idp init --demo`): two-step verification required and
usernames moved to email addresses, both from dates in the past; legacy accounts from
the MLS's previous system (agent-assigned usernames) are imported.
Run alone: python -m clients.mls_portal  (the IdP on :5000 first; `make run` starts all).
"""

from __future__ import annotations

from flask import Flask, render_template

from clients.common import Brand, PortalSettings, create_portal_app, run, signin_required

ISSUER = "http://127.0.0.1:5000"
BASE_URL = "http://127.0.0.1:5001"
CLIENT_ID = "lakeside-mls"
CLIENT_SECRET = "lakeside-mls-demo-secret"  # development only (`idp init --demo`)
BRAND = Brand("mls", "Lakeside MLS", "Homes for sale around Lakeside", "#0b5d8c")

SAVED_SEARCHES = (
    ("3+ bedrooms near Lakeside Elementary", "under $450,000 · 12 new listings this week"),
    ("Lakefront condos", "2 bedrooms, parking · 3 new listings"),
    ("Fixer-uppers in Old Town", "single family, over 0.2 acres · 5 new listings"),
)

HOME = """{% extends "layout.html" %}
{% block content %}
<h1>Find your next home in Lakeside</h1>
<section class="card">
  <h2>Your saved searches</h2>
  {% if signin %}
  <p>Your agent's searches and the ones you saved, with new listings every morning.</p>
  <p><a class="button" href="{{ url_for('searches') }}">Open your saved searches</a></p>
  {% else %}
  <p>Sign in to see the searches your agent saved for you.</p>
  <p><a class="button" href="{{ url_for('login', next=url_for('searches')) }}">Sign in to see
    saved searches</a></p>
  {% endif %}
</section>
<section class="card">
  <h2>New: your email is your username</h2>
  <p>Sign in with your email address and a password you choose. Still have the username your
  agent gave you? Use it once more: we'll ask you to confirm your email and choose a password.
  Two-step verification is required for every account.</p>
</section>
{% endblock %}
"""

SEARCHES = """{% extends "layout.html" %}
{% block title %}Saved searches · {{ brand.name }}{% endblock %}
{% block content %}
<h1>Saved searches</h1>
<section class="card" aria-labelledby="searches-heading">
  <h2 id="searches-heading">Searches of {{ signin.display_name }}</h2>
  <ul class="items">
  {% for title, detail in searches %}
    <li><strong>{{ title }}</strong><br><span class="muted">{{ detail }}</span></li>
  {% endfor %}
  </ul>
</section>
{% endblock %}
"""


def create_app(settings: PortalSettings | None = None) -> Flask:
    """The portal at `settings.base_url` (default: the demo's fixed ports and client)."""
    settings = settings or PortalSettings(BASE_URL, ISSUER, CLIENT_ID, CLIENT_SECRET)
    app = create_portal_app(BRAND, settings, {"home.html": HOME, "searches.html": SEARCHES})

    @app.get("/")
    def home() -> str:
        return render_template("home.html")

    @app.get("/searches")
    @signin_required
    def searches() -> str:
        return render_template("searches.html", searches=SAVED_SEARCHES)

    return app


if __name__ == "__main__":
    run(create_app(), BASE_URL)
