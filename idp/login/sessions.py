"""IdP browser sessions: a server-side record, its id in the signed session cookie."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app, session

from idp.clock import utcnow
from idp.db import db
from idp.models import IdpSession, User
from idp.oidc import tokens
from idp.oidc.backchannel import notify_clients

SESSION_KEY = "sid"


def current_session() -> IdpSession | None:
    """The browser's live IdP session, or None (ended, expired, disabled user)."""
    sid = session.get(SESSION_KEY)
    if not sid:
        return None
    record = db.session.get(IdpSession, sid)
    if record is None or not record.is_current():
        session.pop(SESSION_KEY, None)
        return None
    return record


def establish_session(user: User, amr: list[str], acr: str, auth_time: datetime) -> IdpSession:
    """Record a fresh authentication: the same user's session is refreshed, else a new one."""
    record = current_session()
    if record is not None and record.user_id != user.id:
        end_idp_session(record)  # a different person signs in on this browser
        record = None
    if record is None:
        hours = current_app.extensions["idp"].settings.session.lifetime_hours
        record = IdpSession(user_id=user.id, expires_at=auth_time + timedelta(hours=hours),
                            auth_time=auth_time, amr=amr, acr=acr)
        db.session.add(record)
    else:
        record.auth_time, record.amr, record.acr = auth_time, amr, acr
    record.last_seen_at = utcnow()
    db.session.flush()
    session[SESSION_KEY] = record.id
    return record


def end_idp_session(record: IdpSession) -> None:
    """End a session, its non-offline tokens, and tell every client that asked to know."""
    if record.ended_at is None:
        record.ended_at = utcnow()
        tokens.revoke_session_tokens(record.id)
        db.session.commit()
        notify_clients(record)
    if session.get(SESSION_KEY) == record.id:
        session.pop(SESSION_KEY, None)
