"""Single-use emailed links: issued with a lifetime, stored hashed, redeemed once.

A new link for the same person and purpose supersedes the older ones; a password change
voids every outstanding link of the person.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import current_app, has_request_context, request
from sqlalchemy import update

from idp.clock import utcnow
from idp.db import db
from idp.errors import TooManyAttempts
from idp.models import ActionLink, Portal, User
from idp.security import throttle
from idp.security.secrets import generate_secret, hash_secret

PURPOSES = ("reset", "invitation", "register")

# Purpose-specific reactions to a link page being opened (an invitation becomes "opened");
# registered by their modules, like `completion.AFTER_PASSWORD_SET`.
AFTER_LINK_OPENED: dict[str, Callable[[ActionLink], None]] = {}


def issue_link(
    purpose: str,
    email: str,
    lifetime_days: int,
    user: User | None = None,
    portal: Portal | None = None,
    return_params: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> tuple[ActionLink, str]:
    """A new link (row, raw token); older usable links for the same purpose are superseded."""
    # Invitations from different portals are independent: a new one replaces only the
    # same portal's earlier link.
    supersede_links(email, purpose, portal if purpose == "invitation" else None)
    link, token = build_link(purpose, email, lifetime_days, user, portal, return_params, data)
    db.session.add(link)
    db.session.flush()
    return link, token


def build_link(
    purpose: str,
    email: str,
    lifetime_days: int,
    user: User | None = None,
    portal: Portal | None = None,
    return_params: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> tuple[ActionLink, str]:
    """A new link not yet added to the session, superseding nothing (bulk invitations
    supersede only where they know an older link exists, and add links by batches)."""
    assert purpose in PURPOSES
    token = generate_secret(32)
    link = ActionLink(
        purpose=purpose,
        token_hash=hash_secret(token),
        email=email,
        user_id=user.id if user else None,
        portal_id=portal.id if portal else None,
        return_params=return_params,
        data=data or {},
        expires_at=utcnow() + timedelta(days=lifetime_days),
    )
    return link, token


def link_url(endpoint: str, token: str) -> str:
    """The absolute URL of a link page on the configured issuer (emails leave the request)."""
    issuer = current_app.extensions["idp"].settings.server.issuer
    # Built from the URL map, not the request: the CLI and the worker have no request
    # (url_for would need SERVER_NAME there). Same rule as discovery: issuer + route.
    path = current_app.url_map.bind("idp.invalid").build(endpoint, {"token": token})
    return issuer + path


def find_link(token: str, purposes: tuple[str, ...] = PURPOSES) -> ActionLink | None:
    """The link for `token` in any state (the page explains used/expired/superseded).

    Guessing is throttled per address: links are 256-bit random, but a flood of wrong
    tokens is an attack and is slowed down like any other credential check.
    """
    key = throttle.address_key("link", request.remote_addr if has_request_context() else None)
    verdict = throttle.check(key)
    if not verdict.allowed:
        raise TooManyAttempts(
            f"Too many invalid links were tried from your network. Please wait "
            f"{throttle.wait_text(verdict.wait_seconds)} and try again.",
            retry_after=verdict.wait_seconds,
        )
    link = None
    if token and len(token) <= 200:
        link = db.session.execute(
            db.select(ActionLink).filter_by(token_hash=hash_secret(token))
        ).scalar_one_or_none()
    if link is None or link.purpose not in purposes:
        throttle.record_failure(key)
        return None
    return link


def mark_opened(link: ActionLink) -> None:
    """Record the first opening of the link page (and tell the purpose's follow-up)."""
    if link.opened_at is None:
        link.opened_at = utcnow()
        follow_up = AFTER_LINK_OPENED.get(link.purpose)
        if follow_up is not None:
            follow_up(link)
        db.session.commit()


def redeem_link(link: ActionLink) -> bool:
    """Use the link once; False if another request used it first (conditional UPDATE)."""
    now = utcnow()
    result = db.session.execute(
        update(ActionLink)
        .where(ActionLink.id == link.id, ActionLink.used_at.is_(None),
               ActionLink.superseded_at.is_(None), ActionLink.expires_at > now)
        .values(used_at=now)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def supersede_links(email: str, purpose: str | None = None,
                    portal: Portal | None = None) -> None:
    """Void usable links of `email` (of one purpose, or all; of one portal, or any)."""
    condition = [ActionLink.email == email, ActionLink.used_at.is_(None),
                 ActionLink.superseded_at.is_(None)]
    if purpose is not None:
        condition.append(ActionLink.purpose == purpose)
    if portal is not None:
        condition.append(ActionLink.portal_id == portal.id)
    db.session.execute(update(ActionLink).where(*condition).values(superseded_at=utcnow()))


def void_links_of(user: User) -> None:
    """A password change voids every outstanding link of the person."""
    supersede_links(user.email)
    db.session.execute(
        update(ActionLink)
        .where(ActionLink.user_id == user.id, ActionLink.used_at.is_(None),
               ActionLink.superseded_at.is_(None))
        .values(superseded_at=utcnow())
    )
