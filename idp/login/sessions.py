"""IdP browser sessions: a server-side record, its id in the signed session cookie."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import has_request_context, session

from idp import audit
from idp.clock import utcnow
from idp.db import db
from idp.models import IdpSession, User
from idp.oidc import tokens
from idp.oidc.backchannel import notify_clients
from idp.policy import LoginPolicy

SESSION_KEY = "sid"


# Activity is written at most this often, so a busy session does not write every request.
TOUCH_INTERVAL = timedelta(seconds=60)


def current_session() -> IdpSession | None:
    """The browser's live IdP session, or None (ended, expired, idle too long, disabled)."""
    sid = session.get(SESSION_KEY)
    if not sid:
        return None
    record = db.session.get(IdpSession, sid)
    if record is None or not record.is_current():
        session.pop(SESSION_KEY, None)
        return None
    now = utcnow()
    if now - record.last_seen_at >= TOUCH_INTERVAL:
        record.last_seen_at = now
        db.session.commit()
    return record


def establish_session(
    user: User,
    amr: list[str],
    acr: str,
    auth_time: datetime,
    policy: LoginPolicy,
    keep_signed_in: bool = False,
) -> IdpSession:
    """Record a fresh authentication under the portal's policy.

    The same person's session is refreshed (its `sid` stays, so portals keep matching
    back-channel logouts); a different person ends the old session first. The session id
    cannot be fixed by an attacker: it lives in the signed cookie and is made here.
    """
    record = current_session()
    if record is not None and record.user_id != user.id:
        end_idp_session(record)  # a different person signs in on this browser
        record = None
    if record is None:
        record = IdpSession(user_id=user.id)
        db.session.add(record)
    record.auth_time, record.amr, record.acr = auth_time, amr, acr
    record.persistent = keep_signed_in
    if keep_signed_in:
        record.expires_at = auth_time + timedelta(days=policy.keep_me_signed_in_max_days)
        record.idle_timeout_minutes = None
    else:
        record.expires_at = auth_time + timedelta(hours=policy.session_max_hours)
        record.idle_timeout_minutes = policy.idle_timeout_minutes
    record.last_seen_at = utcnow()
    db.session.flush()
    session[SESSION_KEY] = record.id
    # Without "Keep me signed in" the cookie ends with the browser (OIDC session + NIST).
    session.permanent = keep_signed_in
    return record


def end_idp_session(record: IdpSession) -> None:
    """End a session, its non-offline tokens, and tell every client that asked to know."""
    if record.ended_at is None:
        record.ended_at = utcnow()
        tokens.revoke_session_tokens(record.id)
        audit.record("session.ended", actor=f"user:{record.user.sub}", subject=record.user.email,
                     commit=False)
        db.session.commit()
        notify_clients(record)
    # Also called outside a browser request (CLI, admin actions): no cookie to clear then.
    if has_request_context() and session.get(SESSION_KEY) == record.id:
        session.pop(SESSION_KEY, None)


def end_sessions_of(user: User, keep: IdpSession | None = None) -> None:
    """End every live session of `user` except `keep` (after a password change)."""
    for record in db.session.scalars(
        db.select(IdpSession).filter_by(user_id=user.id, ended_at=None)
    ).all():
        if keep is None or record.id != keep.id:
            end_idp_session(record)
