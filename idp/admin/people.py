"""Helping people: find them, see where they belong, and the help-desk actions.

One path for the console, the admin API and the CLI (`idp users send-reset`, `idp users
reset-mfa`): each action checks its input, does the work, records an audit event with the
acting staff member's label, and commits. Errors are `PersonError` ("field: why", as the
CLI prints them and the API turns into a 422). Nothing here returns a secret: MFA methods
are described by kind, name and dates; recovery codes by how many are left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, CompoundSelect, Select, false, func, or_, select, union

from idp import audit
from idp import contacts as contact_directory
from idp.account import reset as account_reset
from idp.admin.roles import ROLES_MANAGE, Actor
from idp.clock import utcnow
from idp.db import db
from idp.legacy.accounts import account_of_placeholder, is_placeholder, username_key
from idp.login.sessions import end_idp_session
from idp.mfa import reset as mfa_reset
from idp.mfa.methods import THROTTLE_AFTER, MfaError, method_label, throttle_wait
from idp.mfa.recovery import remaining_recovery_codes
from idp.mfa.trusted import trusted_devices
from idp.models import (
    AdminRole,
    Client,
    Contact,
    IdpSession,
    Invitation,
    LegacyAccount,
    MfaMethod,
    Portal,
    Token,
    TrustedDevice,
    User,
)
from idp.models.user import normalise_email
from idp.oidc import tokens
from idp.security import throttle
from idp.users import EMAIL_PATTERN

MAX_SEARCH = 200


class PersonError(ValueError):
    """An action refused for this person; the message reads "field: why"."""


# -- finding people ---------------------------------------------------------------------------


def _printable(text: str) -> str:
    """`text` without control characters (PostgreSQL refuses NUL in a string)."""
    return "".join(c for c in text if c.isprintable() or c.isspace())


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def people_of_portals(portal_ids: set[int]) -> CompoundSelect[int | None]:
    """Ids of the people who belong to any of `portal_ids` (see `person_portal_ids`)."""
    ids = sorted(portal_ids)
    client_ids = select(Client.client_id).where(Client.portal_id.in_(ids))
    invited_emails = select(Invitation.email).where(Invitation.portal_id.in_(ids))
    return union(
        select(Contact.user_id).where(Contact.portal_id.in_(ids), Contact.user_id.is_not(None)),
        select(LegacyAccount.user_id).where(LegacyAccount.portal_id.in_(ids),
                                            LegacyAccount.user_id.is_not(None)),
        select(Invitation.user_id).where(Invitation.portal_id.in_(ids),
                                         Invitation.user_id.is_not(None)),
        select(User.id).where(User.email.in_(invited_emails)),
        select(Token.user_id).where(Token.client_id.in_(client_ids),
                                    Token.user_id.is_not(None)),
    )


def search_people(portal_ids: set[int] | None, text: str) -> Select[tuple[User]]:
    """People matching `text` by email, name, legacy username or contact id, by email.

    Parts of an email or name match ("smith", "@example.org"); a legacy username or a
    contact id matches from its start. `portal_ids` None is everyone; otherwise only the
    people of those portals, and only their usernames and contact ids at those portals.
    """
    statement = db.select(User)
    if portal_ids is not None:
        statement = statement.where(User.id.in_(people_of_portals(portal_ids))) \
            if portal_ids else statement.where(false())
    words = " ".join(_printable(text).split())[:MAX_SEARCH]
    if words:
        statement = statement.where(_matches(portal_ids, words))
    return statement.order_by(User.email, User.id)


def _matches(portal_ids: set[int] | None, words: str) -> ColumnElement[bool]:
    folded = _escape_like(words.casefold())
    inside, start = f"%{folded}%", f"{_escape_like(username_key(words))}%"
    legacy = select(LegacyAccount.user_id).where(
        LegacyAccount.username_key.like(start, escape="\\"))
    contact = select(Contact.user_id).where(
        func.lower(Contact.external_id).like(f"{_escape_like(words.lower())}%", escape="\\"))
    if portal_ids is not None:
        legacy = legacy.where(LegacyAccount.portal_id.in_(sorted(portal_ids)))
        contact = contact.where(Contact.portal_id.in_(sorted(portal_ids)))
    return or_(
        User.email.like(f"%{_escape_like(normalise_email(words))}%", escape="\\"),
        func.lower(User.name).like(inside, escape="\\"),
        User.id.in_(legacy.where(LegacyAccount.user_id.is_not(None))),
        User.id.in_(contact.where(Contact.user_id.is_not(None))),
    )


def person_portal_ids(user: User) -> set[int]:
    """The portals `user` belongs to: linked contacts, legacy accounts, invitations (to the
    person or their email), and tokens issued to a portal's clients."""
    rows = db.session.execute(union(
        select(Contact.portal_id).where(Contact.user_id == user.id),
        select(LegacyAccount.portal_id).where(LegacyAccount.user_id == user.id),
        select(Invitation.portal_id).where(
            or_(Invitation.user_id == user.id, Invitation.email == user.email)),
        select(Client.portal_id).where(
            Client.portal_id.is_not(None),
            Client.client_id.in_(select(Token.client_id).where(Token.user_id == user.id))),
    )).scalars()
    return {portal_id for portal_id in rows if portal_id is not None}


def visible_to(user: User, portal_ids: set[int] | None) -> bool:
    """May someone limited to `portal_ids` (None: everyone) see `user`?"""
    return portal_ids is None or bool(person_portal_ids(user) & portal_ids)


def find_person(user_id: object, portal_ids: set[int] | None = None) -> User | None:
    """The person with this id (from a URL), when visible to someone limited to
    `portal_ids`; None otherwise (a person outside one's portals does not exist for them)."""
    try:
        number = int(str(user_id))
    except ValueError:
        return None
    user = db.session.get(User, number) if 0 < number < 2**63 else None
    return user if user is not None and visible_to(user, portal_ids) else None


# -- who may act on whom -----------------------------------------------------------------------


def holds_admin_role(user: User) -> bool:
    """The person is staff: they may sign in to this console."""
    return db.session.execute(
        select(AdminRole.id).where(AdminRole.user_id == user.id).limit(1)).first() is not None


def refusal(actor: Actor, permission: str, user: User, everywhere: bool = False) -> str | None:
    """Why `actor` may not do `permission` to `user`, or None when they may.

    `everywhere`: the action changes the account at every portal (disable, enable, reset
    MFA). A portal_admin may do that only to people of its own portals alone: one portal's
    staff must not lock a person out of another organisation, or weaken their sign-in there.
    And only an administrator may do it to staff: resetting an admin's MFA would let
    whoever holds their password enrol a new factor and use the console as them.
    """
    belongs = person_portal_ids(user)
    if not actor.can_any(permission, belongs):
        return "Your role does not allow this."
    if everywhere:
        allowed = actor.portal_ids(permission)
        if allowed is not None and not (belongs and belongs <= allowed):
            return ("This person also uses portals outside yours: ask an administrator or "
                    "support to do this.")
        if holds_admin_role(user) and not actor.can(ROLES_MANAGE):
            return "This person works in the admin console: only an administrator can do this."
    return None


# -- what staff see about a person -------------------------------------------------------------


@dataclass(frozen=True)
class ThrottleState:
    """Why sign-in may be refused right now (brute-force protection), for the help desk."""

    password_wait_seconds: int
    password_locked: bool  # 100 consecutive failures: only a reset or an unlock frees it
    mfa_throttled: tuple[str, ...]  # names of methods waiting after wrong codes

    @property
    def is_locked(self) -> bool:
        return bool(self.password_wait_seconds or self.password_locked or self.mfa_throttled)


def _password_keys(user: User) -> list[throttle.Key]:
    """Every identifier the person types at the password step: the email and usernames."""
    names = {user.email}
    names.update(db.session.execute(
        select(LegacyAccount.legacy_username).where(LegacyAccount.user_id == user.id)
    ).scalars())
    return [throttle.account_key("password", name) for name in sorted(names)]


def throttle_state(user: User) -> ThrottleState:
    """The person's throttling now: password waits and locks, MFA methods slowed down."""
    verdict = throttle.check(*_password_keys(user))
    methods = db.session.scalars(
        select(MfaMethod).where(MfaMethod.user_id == user.id,
                                MfaMethod.failed_attempts >= THROTTLE_AFTER)
    ).all()
    return ThrottleState(
        password_wait_seconds=verdict.wait_seconds, password_locked=verdict.locked,
        mfa_throttled=tuple(method_label(m) for m in methods if throttle_wait(m) is not None),
    )


@dataclass(frozen=True)
class MethodFacts:
    """One MFA method as staff may see it: never its secret; a phone number masked."""

    id: int
    kind: str
    name: str
    destination: str | None
    created_at: datetime
    confirmed_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class PortalFacts:
    """One portal of a person: contact ids, usernames there, legacy usernames, invitation."""

    portal: Portal
    contact_ids: tuple[str, ...]
    preferred_usernames: tuple[str, ...]
    legacy_usernames: tuple[str, ...]
    invitation_status: str | None


@dataclass(frozen=True)
class PersonDetails:
    user: User
    placeholder: bool  # a legacy username that has not moved to an email yet
    portals: list[PortalFacts]
    methods: list[MethodFacts]
    recovery_codes_left: int
    trusted_browsers: list[TrustedDevice]
    sessions: list[IdpSession]
    throttle: ThrottleState
    legacy_accounts: list[LegacyAccount] = field(default_factory=list)


def mask_phone(number: str | None) -> str | None:
    """"+1 555 010 1234" -> "•••••••••34": enough to confirm with the caller, no more."""
    if not number:
        return None
    digits = [c for c in number if c.isdigit()]
    return "•" * max(len(digits) - 2, 0) + "".join(digits[-2:])


def method_facts(method: MfaMethod) -> MethodFacts:
    destination = method.destination
    if method.kind == "sms":
        destination = mask_phone(destination)
    elif method.kind not in ("email",):
        destination = None
    return MethodFacts(method.id, method.kind, method_label(method), destination,
                       method.created_at, method.confirmed_at, method.last_used_at)


def live_sessions(user: User) -> list[IdpSession]:
    """The person's sessions that have not ended or expired, newest first."""
    rows = db.session.scalars(
        select(IdpSession).where(IdpSession.user_id == user.id, IdpSession.ended_at.is_(None),
                                 IdpSession.expires_at > utcnow())
        .order_by(IdpSession.last_seen_at.desc())
    ).all()
    return [row for row in rows if row.is_current()]


def person_details(user: User, portal_ids: set[int] | None = None) -> PersonDetails:
    """Everything the person page shows (portals limited to `portal_ids` when given)."""
    mine = person_portal_ids(user)
    if portal_ids is not None:
        mine &= portal_ids
    portals = db.session.scalars(
        select(Portal).where(Portal.id.in_(sorted(mine))).order_by(Portal.name)).all()
    contacts = db.session.scalars(
        select(Contact).where(Contact.user_id == user.id).order_by(Contact.external_id)).all()
    legacy = db.session.scalars(
        select(LegacyAccount).where(LegacyAccount.user_id == user.id)
        .order_by(LegacyAccount.username_key)).all()
    invitations = db.session.scalars(
        select(Invitation).where(or_(Invitation.user_id == user.id,
                                     Invitation.email == user.email))
        .order_by(Invitation.id)).all()
    facts = []
    for portal in portals:
        here = [c for c in contacts if c.portal_id == portal.id]
        latest = [i for i in invitations if i.portal_id == portal.id]
        facts.append(PortalFacts(
            portal=portal,
            contact_ids=tuple(c.external_id for c in here),
            preferred_usernames=tuple(contact_directory.preferred_username(c, user)
                                      for c in here),
            legacy_usernames=tuple(a.legacy_username for a in legacy
                                   if a.portal_id == portal.id),
            invitation_status=latest[-1].status if latest else None,
        ))
    methods = db.session.scalars(
        select(MfaMethod).where(MfaMethod.user_id == user.id, MfaMethod.confirmed_at.is_not(None))
        .order_by(MfaMethod.created_at)).all()
    return PersonDetails(
        user=user, placeholder=is_placeholder(user), portals=facts,
        methods=[method_facts(m) for m in methods],
        recovery_codes_left=remaining_recovery_codes(user),
        trusted_browsers=trusted_devices(user), sessions=live_sessions(user),
        throttle=throttle_state(user),
        legacy_accounts=[a for a in legacy if portal_ids is None or a.portal_id in portal_ids],
    )


# -- actions ----------------------------------------------------------------------------------


# Every action takes an optional `portal`: the portal the staff member acted for (a
# portal_admin's own), recorded on the audit event so that portal's admins see it.


def _subject(user: User) -> str:
    return user.email


def _slug(portal: Portal | None) -> str | None:
    return portal.slug if portal is not None else None


def disable_person(user: User, actor_label: str, portal: Portal | None = None) -> None:
    """Disable the account: sign-in refused, every session ended (clients told by
    back-channel logout), every token revoked, including offline ones."""
    if not user.is_active:
        raise PersonError(f"status: the account of {user.email} is already disabled")
    user.disabled_at = utcnow()
    ended = _end_sessions(user)
    tokens.revoke_user_tokens(user.id)
    audit.record("user.disabled", actor=actor_label, subject=_subject(user), commit=False,
                 portal=_slug(portal), sessions_ended=ended)
    db.session.commit()


def enable_person(user: User, actor_label: str, portal: Portal | None = None) -> None:
    """Let a disabled account sign in again (its sessions and tokens stay ended)."""
    if user.is_active:
        raise PersonError(f"status: the account of {user.email} is not disabled")
    if is_placeholder(user) and account_of_placeholder(user) is None:
        # Its legacy account joined another person's account: that one is theirs now.
        raise PersonError("status: this stand-in of a legacy username was merged into the "
                          "person's account when they moved to their email; enable that one")
    user.disabled_at = None
    audit.record("user.enabled", actor=actor_label, subject=_subject(user), commit=False,
                 portal=_slug(portal))
    db.session.commit()


def unlock_person(user: User, actor_label: str, portal: Portal | None = None) -> None:
    """Clear the person's brute-force counters: password waits and the 100-failure lock
    (for their email and legacy usernames), and the MFA methods' wrong-code counts.

    The counters per network address stay: they protect everyone, not this person.
    """
    throttle.record_success(*_password_keys(user))
    cleared = 0
    for method in db.session.scalars(
            select(MfaMethod).where(MfaMethod.user_id == user.id,
                                    MfaMethod.failed_attempts > 0)).all():
        method.failed_attempts, method.last_failed_at = 0, None
        cleared += 1
    audit.record("user.unlocked", actor=actor_label, subject=_subject(user), commit=False,
                 portal=_slug(portal), mfa_methods_cleared=cleared)
    db.session.commit()


def _end_sessions(user: User) -> int:
    """End every live session (tokens of each revoked, back-channel logout sent)."""
    rows = db.session.scalars(
        select(IdpSession).where(IdpSession.user_id == user.id, IdpSession.ended_at.is_(None))
    ).all()
    live = sum(1 for row in rows if row.expires_at > utcnow())
    for row in rows:
        end_idp_session(row)
    return live


def end_person_sessions(user: User, actor_label: str, portal: Portal | None = None) -> int:
    """Sign the person out everywhere; returns how many live sessions ended."""
    ended = _end_sessions(user)
    audit.record("user.sessions_ended", actor=actor_label, subject=_subject(user),
                 portal=_slug(portal), sessions_ended=ended)
    return ended


def send_reset_email(user: User, portal: Portal | None, actor_label: str) -> None:
    """Email the person a single-use link to choose a new password (`portal`: branding,
    the link's lifetime and the page they land on)."""
    if is_placeholder(user) or not EMAIL_PATTERN.match(user.email):
        # e.g. an agent-assigned username not yet moved to an email: nowhere to send it.
        raise PersonError(f"email: {user.email!r} has no usable email address to send a "
                          "link to")
    if not user.is_active:
        raise PersonError(f"email: the account of {user.email} is disabled")
    account_reset.send_reset_email(user, portal)
    audit.record("user.reset_email_sent", actor=actor_label, subject=_subject(user),
                 portal=portal.slug if portal else None, commit=False)
    db.session.commit()


def reset_person_mfa(user: User, reason: str, actor_label: str,
                     portal: Portal | None = None) -> None:
    """Remove the person's MFA (lost phone): methods, recovery codes, trusted browsers go,
    sessions end, they are told by email and enrol again at their next sign-in.

    `reason` is required (a ticket number, "lost phone, called in"): it goes to the audit
    log, never to the person.
    """
    reason = " ".join(reason.split())
    if reason != _printable(reason):
        raise PersonError("reason: no control characters")
    if len(reason) > 500:
        raise PersonError("reason: at most 500 characters")
    try:
        mfa_reset.reset_mfa(user, reason, actor=actor_label)
    except MfaError as exc:
        raise PersonError(str(exc)) from None
    audit.record("user.mfa_reset", actor=actor_label, subject=_subject(user),
                 portal=_slug(portal), reason=reason)
