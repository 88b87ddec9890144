"""What the MFA steps share: recording a passed second factor and the trust choice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from idp import audit
from idp.clock import utcnow
from idp.db import db
from idp.login.transaction import LoginState, rebind_transaction
from idp.mfa.methods import KINDS
from idp.mfa.trusted import trust_browser
from idp.models import User
from idp.ops import metrics
from idp.policy import LoginPolicy


def record_second_factor(state: LoginState, kind: str | None, value: str | None = None) -> None:
    """Add the method's `amr` value (or `value`: a passkey's hwk/swk) and "mfa" (RFC 8176).

    Without a password in this transaction the browser's session is stepped up: its
    person and methods carry over, and no password is asked again. `auth_time` becomes
    now, the time of this authentication.
    """
    user = state.user
    assert user is not None
    if value is None:
        value = KINDS[kind].amr if kind in KINDS else None
    earned = [v for v in state.amr if v != "mfa"]
    amr = list(dict.fromkeys([*earned, *([value] if value else []), "mfa"]))
    tx = state.tx
    if tx.authenticated_at is None:
        tx.user_id = user.id
        tx.keep_signed_in = bool(state.session is not None and state.session.persistent)
    tx.amr = amr
    tx.authenticated_at = utcnow()
    # A session already settled for this transaction is settled again with the new facts.
    tx.session_id = None
    audit.record("mfa.passed", actor=f"user:{user.sub}", subject=user.email, commit=False,
                 client=state.client, method_kind=kind or "recovery")
    rebind_transaction(tx)  # session fixation: in the authentication's own commit
    db.session.commit()
    metrics.MFA_COMPLETIONS.labels(kind or "recovery").inc()


def record_passkey_sign_in(state: LoginState, user: User, value: str, keep: bool) -> None:
    """Sign in with a passkey instead of email and password: two factors at once.

    The passkey verified the person (PIN or biometric, required here) and proved
    possession of the key: `amr` is its hwk/swk and "mfa" (RFC 8176), no "pwd".
    """
    tx = state.tx
    tx.user_id = user.id
    tx.authenticated_at = utcnow()
    tx.amr = [value, "mfa"]
    tx.keep_signed_in = keep
    tx.session_id = None
    rebind_transaction(tx)  # session fixation: in the authentication's own commit
    db.session.commit()


@dataclass(frozen=True)
class TrustPeriod:
    hours: int
    label: str
    selected: bool


def period_label(hours: int) -> str:
    """ "24 hours", "30 days" """
    if hours > 48 and hours % 24 == 0:
        days = hours // 24
        return f"{days} days"
    return "1 hour" if hours == 1 else f"{hours} hours"


def trust_periods(policy: LoginPolicy) -> list[TrustPeriod]:
    """The portal's periods, the longest preselected (the seed's "30 days is the default")."""
    longest = max(policy.trust_periods_hours)
    return [TrustPeriod(h, period_label(h), h == longest) for h in policy.trust_periods_hours]


def apply_trust_choice(user: User, form: Any, policy: LoginPolicy) -> None:
    """Trust this browser when the person chose one of the portal's periods."""
    try:
        hours = int(form.get("trust_hours", "0"))
    except ValueError:
        return
    if hours in policy.trust_periods_hours:
        trust_browser(user, hours)


def brand_name(state: LoginState) -> str:
    """The name people know the sign-in by: the portal's, else the client's."""
    portal = state.client.portal
    return portal.name if portal is not None else state.client.name
