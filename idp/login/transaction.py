"""Login transactions: opened by /authorize, bound to one browser, finished by issuing a code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import session

from idp.clock import utcnow
from idp.db import db
from idp.errors import TransactionExpired
from idp.models import Client, IdpSession, LoginTransaction, User
from idp.security import csrf
from idp.security.secrets import generate_secret

LIFETIME = timedelta(minutes=30)
BROWSER_KEY = "bid"

ACR_PASSWORD = "urn:portal-idp:acr:password"
ACR_MFA = "urn:portal-idp:acr:mfa"
ACR_PHISHING_RESISTANT = "urn:portal-idp:acr:phishing-resistant"
ACR_VALUES = (ACR_PASSWORD, ACR_MFA, ACR_PHISHING_RESISTANT)


def browser_id() -> str:
    """A random id for this browser, kept in its signed session cookie."""
    value = session.get(BROWSER_KEY)
    if not value:
        value = session[BROWSER_KEY] = generate_secret(16)
    return str(value)


def renew_browser_id() -> str:
    """A new browser id and CSRF token for this browser, once someone signs in on it.

    Session fixation: a copy of the cookie made (or planted) before the sign-in keeps the
    old values, which then reach no login transaction and pass no form (OWASP: renew the
    session's identifiers when its privilege changes).
    """
    session.pop(csrf.FIELD, None)  # made anew by the next page's form
    value = session[BROWSER_KEY] = generate_secret(16)
    return value


def rebind_transaction(tx: LoginTransaction) -> None:
    """Sign-in happened in this transaction: it follows this browser's new id only."""
    tx.browser_id = renew_browser_id()


def open_transaction(client: Client, params: dict[str, str]) -> LoginTransaction:
    """Save a validated authorization request as a new login transaction."""
    tx = LoginTransaction(
        browser_id=browser_id(),
        client_id=client.client_id,
        params=params,
        expires_at=utcnow() + LIFETIME,
    )
    db.session.add(tx)
    db.session.flush()
    return tx


def load_transaction(tx_id: str) -> LoginTransaction:
    """The open transaction `tx_id` of this browser, or a clear "expired" page."""
    tx = db.session.get(LoginTransaction, tx_id)
    if (
        tx is None
        or tx.browser_id != session.get(BROWSER_KEY)
        or tx.completed_at is not None
        or utcnow() >= tx.expires_at
    ):
        raise TransactionExpired(
            "This sign-in page has expired or was opened in another browser. "
            "Go back to the site you came from and sign in again."
        )
    return tx


def acr_for(amr: list[str]) -> str:
    """The `acr` value earned by the authentication methods `amr` (RFC 8176 values)."""
    # A passkey or security key (hwk, or swk for a synced passkey): the browser binds its
    # signature to the IdP's origin, so a look-alike site cannot relay it (idp.mfa.passkeys).
    if "hwk" in amr or "swk" in amr:
        return ACR_PHISHING_RESISTANT
    if "mfa" in amr:
        return ACR_MFA
    return ACR_PASSWORD


@dataclass
class LoginState:
    """Facts the steps decide from, recomputed on every request."""

    tx: LoginTransaction
    client: Client
    session: IdpSession | None
    id_token_hint_sub: str | None = None

    @property
    def params(self) -> dict[str, Any]:
        return self.tx.params

    @property
    def prompts(self) -> set[str]:
        return set((self.params.get("prompt") or "").split())

    @property
    def user(self) -> User | None:
        """Who is signing in: authenticated in this transaction, else the session's user."""
        if self.tx.authenticated_at is not None:
            return self.tx.user
        return self.session.user if self.session is not None else None

    @property
    def auth_time(self) -> datetime | None:
        if self.tx.authenticated_at is not None:
            return self.tx.authenticated_at
        return self.session.auth_time if self.session is not None else None

    @property
    def amr(self) -> list[str]:
        if self.tx.authenticated_at is not None:
            return list(self.tx.amr)
        return list(self.session.amr) if self.session is not None else []


@dataclass(frozen=True)
class LoginContext:
    """What the authorization code records about the finished sign-in."""

    session_id: str
    auth_time: datetime
    acr: str
    amr: list[str]
