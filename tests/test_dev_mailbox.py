"""The development mailbox shows queued mail with clickable links, in development only."""

from __future__ import annotations

from idp import create_app
from idp.db import db
from idp.notify.outbox import queue_email
from tests.conftest import make_settings


def test_dev_mailbox_lists_messages_with_clickable_links(app, http):
    queue_email("pat@example.org", "reset_password", name="Pat", portal_name=None,
                link="http://127.0.0.1:5000/reset/xyz", lifetime="1 day")
    db.session.commit()
    listing = http.get("/dev/mailbox").get_data(as_text=True)
    assert "Reset your password" in listing and "pat@example.org" in listing
    page = http.get("/dev/mailbox/1").get_data(as_text=True)
    assert '<a href="http://127.0.0.1:5000/reset/xyz">' in page


def test_dev_mailbox_escapes_message_content(app, http):
    queue_email("pat@example.org", "reset_password", name="<script>alert(1)</script>",
                portal_name=None, link="http://127.0.0.1:5000/r", lifetime="1 day")
    db.session.commit()
    page = http.get("/dev/mailbox/1").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page


def test_dev_mailbox_does_not_exist_in_production(tmp_path):
    production = create_app(make_settings(tmp_path, server={"environment": "production"}))
    assert production.test_client().get("/dev/mailbox").status_code == 404
