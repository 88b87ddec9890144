"""Members Only, the members' site of an association (port 5002).

Its login policy at the IdP (`idp init --demo`): two-step verification optional. Staff
invite members and send them a "choose your password" email; nobody sees a password.
Run alone: python -m clients.members_portal  (the IdP on :5000 first; `make run` starts all).
"""

from __future__ import annotations

from flask import Flask, render_template

from clients.common import Brand, PortalSettings, create_portal_app, run

ISSUER = "http://127.0.0.1:5000"
BASE_URL = "http://127.0.0.1:5002"
CLIENT_ID = "members-only"
CLIENT_SECRET = "members-only-demo-secret"  # development only (`idp init --demo`)
PORTAL_SLUG = "members"  # the portal's name at the IdP, for the staff commands shown
BRAND = Brand("members", "Members Only", "Lakeside Association · members' site", "#6b3fa0")

HOME = """{% extends "layout.html" %}
{% block content %}
{% if signin %}
<h1>Welcome back, {{ signin.display_name }}</h1>
<section class="card">
  <h2>For members</h2>
  <ul class="items">
    <li>Annual meeting: 12 March, 7 pm, Lakeside Community Hall</li>
    <li>Member directory and committee pages</li>
    <li>Your dues are paid until 31 December</li>
  </ul>
</section>
{% else %}
<h1>Members Only</h1>
<section class="card">
  <p>News, events and the member directory of the Lakeside Association.</p>
  <p><a class="button" href="{{ url_for('login') }}">Sign in with your email</a></p>
  <p class="muted">Invited by the office? Use the link in your invitation email to choose
  your password first.</p>
</section>
{% endif %}
<section class="card" aria-labelledby="staff-heading">
  <h2 id="staff-heading">For association staff</h2>
  <p>Staff never see or set passwords. To invite a member, or to send someone a link to
  choose a new password, run on the IdP:</p>
  <pre>idp invitations send --portal {{ slug }} --email pat@example.com --name "Pat Doe"
idp users send-reset --portal {{ slug }} --email morgan.lee@example.com</pre>
  <p class="muted">In this demo the emails land in the IdP's development mailbox:
  <a href="{{ issuer }}/dev/mailbox">{{ issuer }}/dev/mailbox</a>.</p>
</section>
{% endblock %}
"""


def create_app(settings: PortalSettings | None = None) -> Flask:
    """The portal at `settings.base_url` (default: the demo's fixed ports and client)."""
    settings = settings or PortalSettings(BASE_URL, ISSUER, CLIENT_ID, CLIENT_SECRET)
    app = create_portal_app(BRAND, settings, {"home.html": HOME})

    @app.get("/")
    def home() -> str:
        return render_template("home.html", slug=PORTAL_SLUG)

    return app


if __name__ == "__main__":
    run(create_app(), BASE_URL)
