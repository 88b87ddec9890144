"""Typed SQLAlchemy models, one module per concept."""

from __future__ import annotations

from idp.models.admin import AdminRole
from idp.models.audit import AuditEvent
from idp.models.client import Client
from idp.models.contact import Contact
from idp.models.invitation import Invitation
from idp.models.keys import SigningKey
from idp.models.legacy import LegacyAccount, LegacyMigration
from idp.models.links import ActionLink
from idp.models.mfa import (
    MfaCode,
    MfaMethod,
    MfaSkip,
    RecoveryCode,
    TrustedDevice,
    WebAuthnChallenge,
)
from idp.models.oauth import AuthorizationCode, Consent, Token, UsedAssertion
from idp.models.outbox import OutboxMessage
from idp.models.portal import Portal
from idp.models.session import IdpSession, LoginTransaction, SessionClient
from idp.models.throttle import ThrottleCounter
from idp.models.user import User

__all__ = [
    "AdminRole",
    "AuditEvent",
    "ActionLink",
    "Contact",
    "Invitation",
    "AuthorizationCode",
    "Client",
    "Consent",
    "IdpSession",
    "LegacyAccount",
    "LegacyMigration",
    "LoginTransaction",
    "MfaCode",
    "MfaMethod",
    "MfaSkip",
    "OutboxMessage",
    "Portal",
    "RecoveryCode",
    "SessionClient",
    "SigningKey",
    "ThrottleCounter",
    "Token",
    "TrustedDevice",
    "UsedAssertion",
    "User",
    "WebAuthnChallenge",
]
