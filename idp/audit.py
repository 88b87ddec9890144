"""Recording security events. The application only ever inserts audit rows; the database
refuses updates and deletes (triggers in migration 0002), so the log is append-only.

Never put a password, code, token or secret in `details`.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import has_request_context, request

from idp.db import db
from idp.models.audit import AuditEvent

log = logging.getLogger("idp.audit")


def record(
    kind: str,
    *,
    actor: str = "system",
    subject: str | None = None,
    portal: str | None = None,
    client_id: str | None = None,
    commit: bool = True,
    **details: Any,
) -> AuditEvent:
    """Add an audit event (with the request's address and user agent when there is one)."""
    ip = user_agent = None
    if has_request_context():
        ip = request.remote_addr
        user_agent = (request.user_agent.string or "")[:300] or None
    event = AuditEvent(kind=kind, actor=actor[:200], subject=(subject or None),
                       portal=portal, client_id=client_id, ip=ip, user_agent=user_agent,
                       details=details)
    db.session.add(event)
    if commit:
        db.session.commit()
    log.info("audit %s actor=%s subject=%s", kind, actor, subject)
    return event
