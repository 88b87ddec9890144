"""Which portal an account page belongs to: the sign-in it was opened from, or `?portal=`."""

from __future__ import annotations

from typing import Any

from flask import session

from idp.db import db
from idp.login.transaction import BROWSER_KEY
from idp.models import Client, LoginTransaction, Portal


def sign_in_context(tx_id: str | None) -> tuple[Client | None, dict[str, Any] | None]:
    """The client and authorization request of this browser's own open sign-in."""
    if not tx_id or len(tx_id) > 64:
        return None, None
    tx = db.session.get(LoginTransaction, tx_id)
    if tx is None or tx.browser_id != session.get(BROWSER_KEY) or tx.completed_at is not None:
        return None, None
    client = db.session.execute(
        db.select(Client).filter_by(client_id=tx.client_id)
    ).scalar_one_or_none()
    return client, dict(tx.params)


def portal_named(slug: str | None) -> Portal | None:
    """The portal a direct link names (`?portal=SLUG`): its branding, policy, home page."""
    if not slug or len(slug) > 64:
        return None
    return db.session.execute(db.select(Portal).filter_by(slug=slug)).scalar_one_or_none()
