"""When MFA is required, offered or already done: decided from facts on every request."""

from __future__ import annotations

from datetime import date
from typing import Any

from idp.clock import utcnow
from idp.db import db
from idp.login.transaction import ACR_MFA, ACR_PHISHING_RESISTANT, LoginState
from idp.mfa.methods import allowed_methods
from idp.models import AuthorizationCode, Client, Contact, LegacyAccount, MfaSkip, Portal, User
from idp.policy import LoginPolicy

# acr values a second factor answers. Phishing-resistant needs a passkey: a person who has
# one (that the portal accepts) must use it; one who has none still gets MFA, and the ID
# token's `acr` says which level was reached (OIDC Core 5.5.1.1: acr_values is voluntary).
MFA_ACR_VALUES = (ACR_MFA, ACR_PHISHING_RESISTANT)
PASSKEY_AMR = ("hwk", "swk")


def today() -> date:
    """The date policies compare with (UTC: one date for every node and time zone)."""
    return utcnow().date()


def portal_requires_mfa(policy: LoginPolicy) -> bool:
    """The portal's policy makes MFA mandatory from `mfa_required_from` on."""
    return policy.mfa_required_from is not None and policy.mfa_required_from <= today()


def acr_requests_mfa(params: dict[str, Any]) -> bool:
    """The client asked for MFA with `acr_values` (OIDC Core 3.1.2.1)."""
    requested = str(params.get("acr_values") or "").split()
    return any(value in MFA_ACR_VALUES for value in requested)


def mfa_required(state: LoginState) -> bool:
    """MFA is mandatory for this sign-in: by the portal's policy or the client's request."""
    return portal_requires_mfa(state.client.policy) or acr_requests_mfa(state.params)


def passkey_wanted(state: LoginState) -> bool:
    """The client asked for phishing-resistant and the person has a passkey to answer it."""
    requested = str(state.params.get("acr_values") or "").split()
    user = state.user
    if ACR_PHISHING_RESISTANT not in requested or user is None:
        return False
    return any(m.kind == "webauthn" for m in allowed_methods(user, state.client.policy))


def mfa_done(state: LoginState) -> bool:
    """A second factor already passed in this sign-in (or in the session it continues).

    When a passkey is wanted (`passkey_wanted`), only a passkey counts.
    """
    amr = state.amr
    if "mfa" not in amr:
        return False
    return not passkey_wanted(state) or any(value in amr for value in PASSKEY_AMR)


def signed_in_here(state: LoginState) -> bool:
    """The person typed their password in this transaction (not a session continuing)."""
    return state.tx.authenticated_at is not None and "pwd" in state.tx.amr


def skips_used(user: User) -> int:
    """How often the person chose "Skip for now" (counted per person, across portals)."""
    count = db.session.scalar(
        db.select(db.func.count(MfaSkip.id)).where(MfaSkip.user_id == user.id)
    )
    return int(count or 0)


def skips_left(user: User, policy: LoginPolicy) -> int:
    return max(policy.mfa_skips_allowed - skips_used(user), 0)


def skipped_here(state: LoginState) -> bool:
    """The person skipped the offered enrolment in this transaction."""
    return db.session.scalar(
        db.select(MfaSkip.id).where(MfaSkip.login_transaction_id == state.tx.id).limit(1)
    ) is not None


def enrolment_mandatory(state: LoginState, user: User) -> bool:
    """Enrolment cannot be skipped: MFA is required, or the offered skips are used up."""
    if mfa_required(state):
        return True
    policy = state.client.policy
    return (policy.mfa_required_from is not None and skips_left(user, policy) == 0
            and not skipped_here(state))  # the last skip still lets this sign-in through


def enrolment_offered(state: LoginState) -> bool:
    """Before the portal's date, enrolment is offered once per sign-in with a password."""
    return (
        state.client.policy.mfa_required_from is not None
        and signed_in_here(state)
        and not skipped_here(state)
    )


def record_skip(state: LoginState, user: User) -> None:
    portal = state.client.portal
    db.session.add(MfaSkip(user_id=user.id, portal_id=portal.id if portal else None,
                           login_transaction_id=state.tx.id))
    db.session.commit()


def portals_of(user: User) -> list[Portal]:
    """The portals a person belongs to: signed in to, linked as a contact, or imported."""
    signed_in = db.select(Client.portal_id).where(
        Client.client_id.in_(db.select(AuthorizationCode.client_id)
                             .where(AuthorizationCode.user_id == user.id)))
    contact = db.select(Contact.portal_id).where(Contact.user_id == user.id)
    legacy = db.select(LegacyAccount.portal_id).where(LegacyAccount.user_id == user.id)
    return list(db.session.scalars(
        db.select(Portal).where(Portal.id.in_(signed_in.union(contact, legacy)))
        .order_by(Portal.name)
    ).all())


def mfa_required_for(user: User) -> bool:
    """A portal of the person requires MFA now: their last method must stay."""
    return any(portal_requires_mfa(portal.policy) for portal in portals_of(user))
