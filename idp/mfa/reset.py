"""A support admin resets a person's MFA (lost phone): they enrol again at the next sign-in."""

from __future__ import annotations

import logging

from idp.db import db
from idp.login.sessions import end_sessions_of
from idp.mfa.methods import MfaError, delete_method
from idp.mfa.trusted import revoke_trusted_devices
from idp.models import MfaMethod, RecoveryCode, User
from idp.notify.outbox import queue_email
from idp.users import EMAIL_PATTERN

# The audit log is another issue; until it exists, resets are logged here.
log = logging.getLogger("idp.mfa")


def reset_mfa(user: User, reason: str, actor: str = "admin") -> None:
    """Remove every method, recovery code and trusted browser of `user`, end their sessions,
    and tell them.

    `reason` is required (why support did it: it goes to the log, not to the person).
    """
    reason = " ".join(reason.split())
    if not reason:
        raise MfaError("reason: say why the MFA is reset (e.g. the ticket number)")
    methods = db.session.scalars(db.select(MfaMethod).where(MfaMethod.user_id == user.id)).all()
    for method in methods:
        delete_method(method)
    db.session.execute(db.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.commit()
    revoked = revoke_trusted_devices(user)
    # Whoever holds the lost phone may be signed in: every session (and its tokens) ends.
    end_sessions_of(user)
    emailed = bool(EMAIL_PATTERN.match(user.email))
    if emailed:
        queue_email(user.email, "mfa_reset", name=user.name)
        db.session.commit()
    log.warning(
        "mfa reset: user %s (%s) by %s, reason %r: %d method(s) removed, %d trusted "
        "browser(s) revoked%s", user.sub, user.email, actor, reason, len(methods), revoked,
        "" if emailed else ", no email address to notify",
    )
