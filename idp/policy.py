"""The login policy of a portal: typed, validated, stored as JSON on the portal.

Every setting has a default here; `idp portals set SLUG key=value` and the admin console
change them through `LoginPolicy.with_changes`, which validates and explains errors.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from datetime import date
from typing import Any

SELF_REGISTRATION_MODES = ("off", "match_only", "create")
MFA_METHODS = ("totp", "email", "sms", "webauthn")
KEEP_SIGNED_IN_LIMIT_DAYS = 90  # the seeds' "up to three months"; never more

DEFAULT_INVITATION_MESSAGE = (
    "You are invited to use your online account. Choose a password with the link below; "
    "from then on you sign in with your email address and that password."
)
DEFAULT_NOT_FOUND_MESSAGE = (
    "We could not find you in our directory. Please contact the office so that we can add you."
)


class PolicyError(ValueError):
    """An invalid policy setting; the message names the key."""


@dataclass(frozen=True)
class LoginPolicy:
    # MFA (issue "Multi-factor authentication")
    mfa_required_from: date | None = None
    mfa_methods: tuple[str, ...] = MFA_METHODS
    mfa_skips_allowed: int = 3
    trust_periods_hours: tuple[int, ...] = (24, 720)
    # Email as username
    email_username_migration_from: date | None = None
    # All legacy usernames retired: only emails sign in (the migration is finished)
    legacy_usernames_retired: bool = False
    # Self-registration ("New user? Create an account")
    self_registration: str = "off"
    not_found_message: str = DEFAULT_NOT_FOUND_MESSAGE
    # Links: invitations / staff set-password links, and self-service reset
    set_password_link_days: int = 7
    reset_link_days: int = 1
    invitation_message: str = DEFAULT_INVITATION_MESSAGE
    # Sessions
    keep_me_signed_in_max_days: int = KEEP_SIGNED_IN_LIMIT_DAYS
    idle_timeout_minutes: int = 30
    session_max_hours: int = 12
    # Passwords (NIST SP 800-63B: 15 for password-only accounts, 8 allowed with MFA)
    password_min_length: int = 12

    @classmethod
    def from_stored(cls, data: dict[str, Any] | None) -> LoginPolicy:
        """The policy from its JSON form; unknown keys (from newer versions) are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in (data or {}).items() if k in known}
        return cls().with_changes(**values)

    def to_stored(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def with_changes(self, **changes: Any) -> LoginPolicy:
        """A copy with `changes` applied (strings are parsed), validated."""
        hints = typing.get_type_hints(LoginPolicy)
        parsed = {}
        for key, value in changes.items():
            if key not in hints:
                raise PolicyError(f"{key}: unknown login policy setting")
            parsed[key] = _parse(key, hints[key], value)
        policy = dataclasses.replace(self, **parsed)
        policy.validate()
        return policy

    def validate(self) -> None:
        if self.self_registration not in SELF_REGISTRATION_MODES:
            raise PolicyError("self_registration: must be off, match_only or create")
        for method in self.mfa_methods:
            if method not in MFA_METHODS:
                raise PolicyError(f"mfa_methods: unknown method {method!r}")
        if not 1 <= self.keep_me_signed_in_max_days <= KEEP_SIGNED_IN_LIMIT_DAYS:
            raise PolicyError(
                f"keep_me_signed_in_max_days: between 1 and {KEEP_SIGNED_IN_LIMIT_DAYS}"
            )
        if not 8 <= self.password_min_length <= 64:
            raise PolicyError("password_min_length: between 8 and 64 (NIST SP 800-63B)")
        for key in ("set_password_link_days", "reset_link_days", "idle_timeout_minutes",
                    "session_max_hours"):
            if getattr(self, key) < 1:
                raise PolicyError(f"{key}: must be at least 1")
        if self.mfa_skips_allowed < 0:
            raise PolicyError("mfa_skips_allowed: must not be negative")
        if not self.trust_periods_hours or any(h < 1 for h in self.trust_periods_hours):
            raise PolicyError("trust_periods_hours: one or more positive numbers of hours")


def _parse(key: str, kind: Any, value: Any) -> Any:
    try:
        if kind == (date | None):
            if value in (None, "", "none"):
                return None
            return value if isinstance(value, date) else date.fromisoformat(str(value))
        if kind is bool:
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered not in ("true", "false", "yes", "no", "1", "0"):
                raise ValueError
            return lowered in ("true", "yes", "1")
        if kind is int:
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if kind is str:
            return str(value)
        if typing.get_origin(kind) is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            item_type = typing.get_args(kind)[0]
            return tuple(item_type(str(i).strip()) for i in items if str(i).strip())
    except (TypeError, ValueError):
        raise PolicyError(f"{key}: not a valid value: {value!r}") from None
    raise PolicyError(f"{key}: unsupported setting type")
