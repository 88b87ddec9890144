"""Legacy accounts (DESIGN.md): from agent-assigned usernames to email as username.

- `idp.security.legacy_hashes`: the old hash formats, detected and verified natively.
- `importer`: `idp users import FILE.csv --portal SLUG` (and the admin API, later).
- `signin`: legacy usernames at the password step; re-hash; "sign in with your email".
- `accounts`: placeholders, linking, `finish_migration`, claims, per-portal status/export.
- The login steps `migrate_legacy`, `verify_email` and `set_password`
  (`idp/login/steps/`) move a person to their email on or after the portal's
  `email_username_migration_from`; `codes` proves the email.

Decisions (the issue leaves them open):

- **Before the migration date** a legacy username and its old password sign in as they
  always did, as a placeholder user of that account (see `accounts`): portals get a `sub`,
  `preferred_username` (the legacy username) and `contact_id` as for anyone.
- **`sub`**: kept. When the confirmed email has no account yet, the placeholder becomes
  the account, so the `sub` a portal saw before the migration stays. When the email
  already has an account (one person, several legacy accounts), that account's `sub`
  wins (other portals know it); the `legacy_usernames` claim (scope `profile`, only the
  asking portal's usernames) lists every username of the portal that now signs in as this
  `sub`, so a portal maps old to new; `preferred_username` stays the legacy username.
- **No password in the file**: the account is pending without a password and cannot
  sign in by username; staff invite it (`idp users legacy-status --export-pending F`,
  then `idp invitations bulk F`). Using any reset or invitation link of the portal links
  the portal's pending accounts whose email on file is that address.
- **"Password not working?"** takes a legacy username or the email on file: the reset
  link goes to the email on file and migrates the account(s) when used (that address
  becomes the username; a wrong or empty email on file needs the old password instead).
- **Retired usernames** (the portal's `legacy_usernames_retired`, or one account's
  `retired_at`) are unknown to the sign-in and reset forms; a placeholder still signed in
  must migrate.
- **Proof of the email**: a 6-digit code (`codes`), not a link: it is typed into the
  browser that holds the sign-in. An email that already has an account may instead be
  proven with that account's password; the page offers both whatever the email.
- **Wrong passwords** at a portal with legacy accounts all answer with the usual message,
  no sooner than the slowest failure seen (at least 0.25 s; `signin.pad_failed_attempt`),
  since old hashes cost what their systems chose. A migrated username with a right
  password gets "You now sign in with your email address (p•••@example.org)".
- A placeholder releases no `email` claim (it has none that is proven), and a session of
  a placeholder is not single sign-on at another portal: there it must migrate first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import Flask

if TYPE_CHECKING:
    from idp.models import ActionLink, User

    FollowUp = Callable[[ActionLink, User], None]

_MARK = "links_legacy_accounts"


def init_app(app: Flask) -> None:
    """Link legacy accounts when a reset or invitation link proves their email."""
    from idp.account.completion import AFTER_PASSWORD_SET
    from idp.legacy.accounts import link_after_mailbox_proof

    def after_link(link: ActionLink, user: User) -> None:
        link_after_mailbox_proof(link.portal, link.email, user)

    # Registered after the purposes' own follow-ups (the invitation becomes "accepted").
    for purpose in ("reset", "invitation"):
        previous = AFTER_PASSWORD_SET.get(purpose)
        if not getattr(previous, _MARK, False):
            AFTER_PASSWORD_SET[purpose] = _chain(previous, after_link)


def _chain(first: FollowUp | None, then: FollowUp) -> FollowUp:
    """`first` (the purpose's own follow-up, if any), then `then`."""

    def follow_up(link: ActionLink, user: User) -> None:
        if first is not None:
            first(link, user)
        then(link, user)

    setattr(follow_up, _MARK, True)
    return follow_up
