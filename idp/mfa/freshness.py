"""Fresh MFA for the account page: changing or removing a method needs a recent second factor.

"Fresh" means the browser's session passed a second factor within the last 10 minutes: its
`amr` has "mfa" and its `auth_time` (the time of that authentication) is recent. A trusted
browser is not fresh MFA: it stands for a second factor at sign-in, not for a new one now.
The account page steps a session up by recording a new second factor on it.
"""

from __future__ import annotations

from datetime import timedelta

from idp.clock import utcnow
from idp.db import db
from idp.login.transaction import acr_for
from idp.models import IdpSession

FRESH_FOR = timedelta(minutes=10)


def mfa_is_fresh(record: IdpSession) -> bool:
    """The session passed a second factor within `FRESH_FOR`."""
    return "mfa" in (record.amr or []) and utcnow() - record.auth_time <= FRESH_FOR


def record_fresh_mfa(record: IdpSession, value: str | None) -> None:
    """A second factor passed now on this session (RFC 8176 `value`, then "mfa")."""
    earned = [v for v in record.amr or [] if v != "mfa"]
    amr = list(dict.fromkeys([*earned, *([value] if value else []), "mfa"]))
    record.amr = amr
    record.acr = acr_for(amr)
    record.auth_time = utcnow()
    db.session.commit()
