"""The development mailbox: every email and text message the IdP queued, with clickable links.

Registered only when `server.environment` is "development".
"""

from __future__ import annotations

import re

from flask import Blueprint, abort, render_template
from markupsafe import Markup, escape

from idp.db import db
from idp.models.outbox import OutboxMessage

bp = Blueprint("dev", __name__, url_prefix="/dev")
URL = re.compile(r"https?://[^\s<>\"']+")


def linkify(text: str) -> Markup:
    """Escape `text` and turn its URLs into links."""
    escaped = str(escape(text))
    return Markup(URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped))


@bp.get("/mailbox")
def mailbox() -> str:
    messages = db.session.scalars(
        db.select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(200)
    ).all()
    return render_template("dev/mailbox.html", messages=messages, linkify=linkify, client=None)


@bp.get("/mailbox/<int:message_id>")
def message(message_id: int) -> str:
    found = db.session.get(OutboxMessage, message_id)
    if found is None:
        abort(404)
    return render_template("dev/message.html", message=found, linkify=linkify, client=None)
