"""The kinds of second factor, a person's enrolled methods, and the rules that guard them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update

from idp.clock import utcnow
from idp.db import db
from idp.mfa.relying_party import passkeys_supported
from idp.models import MfaCode, MfaMethod, User
from idp.policy import LoginPolicy
from idp.security.throttle import MAX_CONSECUTIVE_FAILURES


class MfaError(ValueError):
    """A refused MFA action; the message is for the person."""


@dataclass(frozen=True)
class MethodKind:
    """What a kind of method is called, what it proves, and how it may be offered."""

    name: str
    #: the name people see (DESIGN.md: "Authenticator app", "Email", "Text message")
    label: str
    #: the RFC 8176 `amr` value it adds, if any (see idp/mfa/__init__.py)
    amr: str | None
    #: NIST SP 800-63B 5.1.3.3 "restricted": offered only beside a stronger method
    restricted: bool = False
    #: strong enough to stand beside a restricted one (not restricted, not email)
    strong: bool = False
    #: built and usable on this server (see `kind_available`)
    available: bool = True


KINDS: dict[str, MethodKind] = {
    kind.name: kind
    for kind in (
        MethodKind("totp", "Authenticator app", "otp", strong=True),
        # amr "hwk" or "swk" by the credential (idp.mfa.passkeys.amr_of)
        MethodKind("webauthn", "Passkey or security key", "hwk", strong=True),
        MethodKind("email", "Email", "mail"),
        MethodKind("sms", "Text message", "sms", restricted=True),
    )
}
# The order methods are offered and chosen in: strongest first.
ORDER = tuple(KINDS)

# Throttling guesses across codes (NIST SP 800-63B 5.2.2): after this many consecutive wrong
# codes, each further try waits, doubling from 30 s to at most 15 minutes.
THROTTLE_AFTER = 10
THROTTLE_MAX = timedelta(minutes=15)


def kind_available(kind: str) -> bool:
    """This server can enrol and challenge `kind` now (passkeys need a domain as issuer)."""
    if kind not in KINDS or not KINDS[kind].available:
        return False
    if kind == "webauthn":
        return passkeys_supported()
    return True


def offered_kinds(policy: LoginPolicy) -> list[str]:
    """The kinds a person may enrol at this portal, strongest first.

    A restricted kind (SMS) is offered only beside a strong one (NIST SP 800-63B 5.1.3.3:
    "at least one alternate authenticator that is not RESTRICTED").
    """
    kinds = [k for k in ORDER if k in policy.mfa_methods and kind_available(k)]
    if not any(KINDS[k].strong for k in kinds):
        kinds = [k for k in kinds if not KINDS[k].restricted]
    return kinds


def confirmed_methods(user: User) -> list[MfaMethod]:
    """The person's working methods: strongest first, then the most recently used."""
    methods = db.session.scalars(
        db.select(MfaMethod).where(
            MfaMethod.user_id == user.id, MfaMethod.confirmed_at.is_not(None)
        )
    ).all()
    return sorted(methods, key=lambda m: (
        ORDER.index(m.kind) if m.kind in ORDER else len(ORDER),
        -(m.last_used_at or m.confirmed_at or m.created_at).timestamp(),
    ))


def usable_methods(user: User) -> list[MfaMethod]:
    """Confirmed methods this server can challenge with now."""
    return [m for m in confirmed_methods(user) if kind_available(m.kind)]


def allowed_methods(user: User, policy: LoginPolicy) -> list[MfaMethod]:
    """The person's methods this portal accepts (its policy's `mfa_methods`)."""
    return [m for m in usable_methods(user) if m.kind in policy.mfa_methods]


def has_mfa(user: User) -> bool:
    """True when the person has at least one confirmed method."""
    return bool(confirmed_methods(user))


def preferred_method(methods: list[MfaMethod]) -> MfaMethod | None:
    """The method to ask for first: the one last used, else the strongest."""
    used = [m for m in methods if m.last_used_at is not None]
    if used:
        return max(used, key=lambda m: m.last_used_at or m.created_at)
    return methods[0] if methods else None


def method_label(method: MfaMethod) -> str:
    kind = KINDS.get(method.kind)
    return method.label or (kind.label if kind else method.kind)


def pending_method(user: User, kind: str) -> MfaMethod | None:
    """The method of `kind` the person is setting up, if any."""
    return db.session.scalars(
        db.select(MfaMethod).where(
            MfaMethod.user_id == user.id, MfaMethod.kind == kind,
            MfaMethod.confirmed_at.is_(None),
        ).order_by(MfaMethod.id.desc())
    ).first()


def find_method(user: User, method_id: object) -> MfaMethod | None:
    """The person's method with id `method_id` (from a form), or None."""
    try:
        number = int(str(method_id))
    except ValueError:
        return None
    method = db.session.get(MfaMethod, number)
    return method if method is not None and method.user_id == user.id else None


def throttle_wait(method: MfaMethod) -> timedelta | None:
    """How long before this method may be tried again, or None."""
    if method.failed_attempts < THROTTLE_AFTER or method.last_failed_at is None:
        return None
    if method.failed_attempts >= MAX_CONSECUTIVE_FAILURES:
        # NIST SP 800-63B 5.2.2: no more than 100 consecutive failures. The method waits
        # until the person passes with another one (or a recovery code) or staff reset MFA.
        return THROTTLE_MAX
    delay = min(timedelta(seconds=30 * 2 ** (method.failed_attempts - THROTTLE_AFTER)),
                THROTTLE_MAX)
    remaining = method.last_failed_at + delay - utcnow()
    return remaining if remaining > timedelta(0) else None


def retry_after(method: MfaMethod) -> int:
    """Whole seconds to wait before the next try of `method` (0: now, or locked for good)."""
    wait = throttle_wait(method)
    if wait is None or method.failed_attempts >= MAX_CONSECUTIVE_FAILURES:
        return 0
    return math.ceil(wait.total_seconds())


def record_failure(method: MfaMethod) -> None:
    method.failed_attempts += 1
    method.last_failed_at = utcnow()


def record_success(method: MfaMethod) -> None:
    """The method passed: the failures of every method of the person are forgiven (whoever
    passes one second factor needs no other, so guessing at the others gains nothing)."""
    db.session.execute(
        update(MfaMethod).where(MfaMethod.user_id == method.user_id, MfaMethod.id != method.id)
        .values(failed_attempts=0, last_failed_at=None))
    method.failed_attempts = 0
    method.last_failed_at = None
    method.last_used_at = utcnow()


def confirm_method(method: MfaMethod) -> None:
    """A method being set up proved itself: it works from now on; other set-ups are dropped."""
    method.confirmed_at = utcnow()
    record_success(method)
    abandoned = db.session.scalars(
        db.select(MfaMethod).where(
            MfaMethod.user_id == method.user_id, MfaMethod.confirmed_at.is_(None),
            MfaMethod.id != method.id,
        )
    ).all()
    for other in abandoned:
        delete_method(other)


def delete_method(method: MfaMethod) -> None:
    """Remove a method and its codes (no rule checked: see `remove_method`)."""
    db.session.execute(db.delete(MfaCode).where(MfaCode.method_id == method.id))
    db.session.delete(method)


def remove_method(user: User, method: MfaMethod, mfa_required: bool) -> None:
    """Remove one of the person's methods; never the last one while MFA is required.

    `mfa_required` is the caller's portal policy (see `idp.mfa.requirement`). Changing or
    removing a method also needs a fresh MFA: that is the account page's to check.
    """
    if method.user_id != user.id:
        raise MfaError("That sign-in method is not yours.")
    others = [m for m in confirmed_methods(user) if m.id != method.id]
    if method.is_confirmed and mfa_required and not others:
        raise MfaError("This is your last verification method and this portal requires one: "
                       "add another method before you remove it.")
    delete_method(method)
    db.session.commit()
