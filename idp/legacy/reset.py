""""Password not working?" for legacy accounts: migration without the old password.

A legacy username, or an email on file, typed into /reset sends the ordinary reset email
to the email on file. Using the link proves that mailbox: the address becomes the
username, the chosen password the password, and every pending account of the portal with
that email on file joins the account (`accounts.link_after_mailbox_proof`). The page
says the same "check your email" whatever was typed.
"""

from __future__ import annotations

from typing import Any

from idp.account.links import issue_link, link_url
from idp.legacy.accounts import (
    ensure_placeholder,
    find_account,
    is_placeholder,
    pending_accounts_with_email,
    user_by_email,
)
from idp.models import Portal
from idp.notify.outbox import queue_email
from idp.users import EMAIL_PATTERN


def send_legacy_reset(portal: Portal | None, identifier: str,
                      return_params: dict[str, Any] | None) -> bool:
    """Queue a reset link for `portal`'s legacy username or email on file; True if sent."""
    from idp.account.reset import lifetime_text, send_reset_email  # (imports this module)

    if portal is None:
        return False
    account = find_account(portal, identifier)
    if account is not None and account.migrated_at is not None:
        # The old username of someone who migrated: their account's usual reset.
        owner = account.user
        if owner is None or not owner.is_active or is_placeholder(owner):
            return False
        send_reset_email(owner, portal, return_params)
        return True
    email = account.email if account is not None else identifier
    if not email or not EMAIL_PATTERN.match(email):
        return False  # an empty or broken email on file: the old password is the way
    accounts = pending_accounts_with_email(portal, email)
    if not accounts:
        return False
    existing = user_by_email(email)
    if existing is not None:
        if not existing.is_active:
            return False
        send_reset_email(existing, portal, return_params)
        return True
    # No account has this email yet: the first account's placeholder becomes it, keeping
    # the `sub` portals saw.
    placeholder = ensure_placeholder(accounts[0])
    if not placeholder.is_active:
        return False
    days = portal.policy.reset_link_days
    _, token = issue_link("reset", email, days, user=placeholder, portal=portal,
                          return_params=return_params, data={"name": accounts[0].name})
    queue_email(email, "reset_password", name=accounts[0].name, portal_name=portal.name,
                link=link_url("account.set_password", token), lifetime=lifetime_text(days))
    return True
