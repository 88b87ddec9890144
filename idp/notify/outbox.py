"""Queueing messages: rendered now (text + HTML from templates/email/), sent by the worker."""

from __future__ import annotations

from typing import Any

from flask import render_template

from idp.db import db
from idp.models.outbox import OutboxMessage


def render_email(kind: str, **context: Any) -> tuple[str, str, str]:
    """(subject, text, html) from templates/email/<kind>.{subject.txt,txt,html}."""
    subject = render_template(f"email/{kind}.subject.txt", **context).strip()
    text = render_template(f"email/{kind}.txt", **context)
    html = render_template(f"email/{kind}.html", **context)
    return subject, text, html


def queue_email(recipient: str, kind: str, **context: Any) -> OutboxMessage:
    """Add an email to the outbox; it is sent when the caller's transaction commits."""
    subject, text, html = render_email(kind, **context)
    message = OutboxMessage(
        channel="email", kind=kind, recipient=recipient,
        subject=subject, body_text=text, body_html=html,
    )
    db.session.add(message)
    return message


def queue_sms(recipient: str, kind: str, text: str) -> OutboxMessage:
    """Add a text message to the outbox."""
    message = OutboxMessage(channel="sms", kind=kind, recipient=recipient, body_text=text)
    db.session.add(message)
    return message
