"""The demo of `make run` (`idp init --demo`): three portals, their clients and people.

Everything the newcomer's walk-through (README) needs, made idempotently: running it again
changes nothing it made, and keeps what people did in the demo (a migrated legacy account
stays migrated, a chosen password stays chosen); the demo portals' branding, policy and
client URIs are set back to the demo's.

- **Lakeside MLS** (:5001), a real-estate consumer portal: MFA required and usernames moved
  to emails, both from dates in the past so the demo shows them; one legacy account with an
  agent-assigned username and a real bcrypt hash from its previous system.
- **Members Only** (:5002), an association: MFA optional; one member with an account and a
  contact record; one pending invitation (its email is in the development mailbox).
- **Grace Church** (:5003), a ministry portal: self-registration matched against its
  contacts (`match_only`) with its own not-found message; keep me signed in; one contact
  without an account, who creates one.
- An administrator for the console (/admin), who sets up MFA at first sign-in.

The clients are first-party, with fixed ids and secrets (development only) and URIs on
127.0.0.1; `seed_demo(base_urls)` puts them elsewhere (the browser tests' random ports).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import bcrypt

from idp.admin.access import grant_role
from idp.admin.roles import ADMIN
from idp.clients import register_client
from idp.db import db
from idp.invitations import send_invitation
from idp.legacy.importer import import_legacy_accounts
from idp.models import Client, Contact, Invitation, LegacyAccount, Portal, User
from idp.portals import create_portal, update_portal
from idp.users import create_user

# Old systems hashed with bcrypt at cost 10; the importer keeps the hash, sign-in verifies it
# natively and re-hashes with argon2id.
LEGACY_BCRYPT_ROUNDS = 10


@dataclass(frozen=True)
class DemoPortal:
    """One demo portal: the IdP's portal record and the client of its web site."""

    slug: str
    name: str
    port: int
    client_id: str
    client_secret: str
    primary_color: str
    policy: Mapping[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class DemoAccount:
    """A line of the demo's account list (printed by `idp init --demo` and `make run`)."""

    portal: str
    login: str
    password: str
    note: str


MLS = DemoPortal(
    slug="lakeside-mls", name="Lakeside MLS", port=5001,
    client_id="lakeside-mls", client_secret="lakeside-mls-demo-secret",
    primary_color="#0b5d8c",
    policy={
        # Dates in the past: the demo shows MFA required and the move to email usernames.
        "mfa_required_from": "2025-11-05",
        "email_username_migration_from": "2026-01-25",
        "trust_periods_hours": "24,720",
    },
)
MEMBERS = DemoPortal(
    slug="members", name="Members Only", port=5002,
    client_id="members-only", client_secret="members-only-demo-secret",
    primary_color="#6b3fa0",
    policy={
        "mfa_required_from": "",  # MFA optional
        "set_password_link_days": "7",
        "invitation_message": (
            "Welcome to Members Only, the members' site of the Lakeside Association. "
            "Choose your password with the link below; from then on you sign in with "
            "your email address and that password."
        ),
    },
)
MINISTRY = DemoPortal(
    slug="ministry", name="Grace Church", port=5003,
    client_id="grace-church", client_secret="grace-church-demo-secret",
    primary_color="#2e6b3a",
    policy={
        "self_registration": "match_only",
        "not_found_message": (
            "We couldn't find you in the Grace Church directory. Please call the church "
            "office at (555) 010-0123 so that we can add you, then try again."
        ),
        "keep_me_signed_in_max_days": "90",
        "idle_timeout_minutes": "60",
    },
)
PORTALS = (MLS, MEMBERS, MINISTRY)

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "correct horse battery staple"
LEGACY_USERNAME = "jsmith_agent42"
LEGACY_PASSWORD = "lakeside42"  # chosen by an agent years ago: too short for today's policy
LEGACY_EMAIL = "jordan.smith@example.com"
MEMBER_EMAIL = "morgan.lee@example.com"
MEMBER_PASSWORD = "violet lanterns by the harbour"
INVITED_EMAIL = "casey.nguyen@example.com"
CONTACT_EMAIL = "ruth.walker@example.com"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "keys to the whole building"

ACCOUNTS = (
    DemoAccount("any", DEMO_EMAIL, DEMO_PASSWORD,
                "an account with a verified email; sets up MFA at Lakeside MLS"),
    DemoAccount(MLS.name, LEGACY_USERNAME, LEGACY_PASSWORD,
                "a legacy username from the old MLS system: moves to its email "
                f"({LEGACY_EMAIL}) at first sign-in"),
    DemoAccount(MEMBERS.name, MEMBER_EMAIL, MEMBER_PASSWORD,
                "a member with an account (contact M-2001)"),
    DemoAccount(MEMBERS.name, INVITED_EMAIL, "",
                "invited by staff: the invitation is in the development mailbox"),
    DemoAccount(MINISTRY.name, CONTACT_EMAIL, "",
                "a church contact without an account: New user? Create an account"),
    DemoAccount("admin console", ADMIN_EMAIL, ADMIN_PASSWORD,
                "an administrator: http://127.0.0.1:5000/admin/ (sets up an authenticator "
                "app at first sign-in)"),
)


def seed_demo(base_urls: Mapping[str, str] | None = None) -> tuple[DemoAccount, ...]:
    """Create or update the demo portals, clients and people; the accounts to show.

    `base_urls` maps a portal slug to where its site runs (default 127.0.0.1:5001-5003).
    """
    urls = {portal.slug: portal.base_url for portal in PORTALS}
    urls.update(base_urls or {})
    for portal in PORTALS:
        seed_portal(portal, urls[portal.slug])
    seed_people()
    return ACCOUNTS


def seed_portal(spec: DemoPortal, base_url: str) -> Portal:
    """The portal with its branding and policy, and its first-party client at `base_url`."""
    portal = db.session.execute(
        db.select(Portal).filter_by(slug=spec.slug)
    ).scalar_one_or_none()
    if portal is None:
        create_portal(spec.slug, spec.name)
    portal = update_portal(spec.slug, {
        "name": spec.name,
        "primary_color": spec.primary_color,
        # After an invitation or a reset outside a sign-in, people land on the portal's
        # sign-in, which signs them in by single sign-on.
        "home_url": f"{base_url}/login",
        **spec.policy,
    })
    redirect_uris = [f"{base_url}/callback"]
    post_logout_redirect_uris = [f"{base_url}/signed-out"]
    backchannel_logout_uri = f"{base_url}/backchannel-logout"
    client = db.session.execute(
        db.select(Client).filter_by(client_id=spec.client_id)
    ).scalar_one_or_none()
    if client is None:
        register_client(name=spec.name, client_id=spec.client_id,
                        client_secret=spec.client_secret, portal_slug=spec.slug,
                        first_party=True, redirect_uris=redirect_uris,
                        post_logout_redirect_uris=post_logout_redirect_uris,
                        backchannel_logout_uri=backchannel_logout_uri)
    else:
        client.redirect_uris = redirect_uris
        client.post_logout_redirect_uris = post_logout_redirect_uris
        client.backchannel_logout_uri = backchannel_logout_uri
        client.portal_id = portal.id
        db.session.commit()
    return portal


def seed_people() -> None:
    """The demo user, the MLS legacy account, a member, an invitation, church contacts."""
    mls, members, ministry = (_portal(spec.slug) for spec in PORTALS)
    if _user(DEMO_EMAIL) is None:
        create_user(DEMO_EMAIL, DEMO_PASSWORD, "Demo Person", email_verified=True)
    if _user(MEMBER_EMAIL) is None:
        create_user(MEMBER_EMAIL, MEMBER_PASSWORD, "Morgan Lee", email_verified=True)
    if _user(ADMIN_EMAIL) is None:
        create_user(ADMIN_EMAIL, ADMIN_PASSWORD, "Alex Admin", email_verified=True)
    grant_role(ADMIN_EMAIL, ADMIN, actor="demo")  # unchanged when already granted
    _add_contact(members, "M-2001", MEMBER_EMAIL, "Morgan Lee")
    _add_contact(members, "M-2002", INVITED_EMAIL, "Casey Nguyen")
    _add_contact(ministry, "MP-3001", CONTACT_EMAIL, "Ruth Walker", "+15550100301")
    _add_contact(ministry, "MP-3002", DEMO_EMAIL, "Demo Person")
    if _legacy_account(mls, LEGACY_USERNAME) is None:
        # Imported once: a re-import would store a new salt, an update for nothing.
        password_hash = bcrypt.hashpw(LEGACY_PASSWORD.encode(),
                                      bcrypt.gensalt(LEGACY_BCRYPT_ROUNDS)).decode()
        import_legacy_accounts(mls, [(2, {
            "legacy_username": LEGACY_USERNAME, "email": LEGACY_EMAIL,
            "name": "Jordan Smith", "phone": "", "contact_id": "MLS-1042",
            "password_hash": password_hash,
        })])
    if db.session.execute(
        db.select(Invitation.id).filter_by(portal_id=members.id, email=INVITED_EMAIL)
    ).first() is None:
        send_invitation(members, INVITED_EMAIL, "Casey Nguyen", "M-2002")


def _portal(slug: str) -> Portal:
    return db.session.execute(db.select(Portal).filter_by(slug=slug)).scalar_one()


def _user(email: str) -> User | None:
    return db.session.execute(db.select(User).filter_by(email=email)).scalar_one_or_none()


def _legacy_account(portal: Portal, username: str) -> LegacyAccount | None:
    return db.session.execute(
        db.select(LegacyAccount).filter_by(portal_id=portal.id, username_key=username.casefold())
    ).scalar_one_or_none()


def _add_contact(portal: Portal, external_id: str, email: str, name: str,
                 phone: str | None = None) -> None:
    """A contact of the portal's own directory (linked to an account by the IdP later)."""
    exists = db.session.execute(
        db.select(Contact.id).filter_by(portal_id=portal.id, external_id=external_id)
    ).first()
    if exists is None:
        db.session.add(Contact(portal_id=portal.id, external_id=external_id, email=email,
                               name=name, phone=phone))
        db.session.commit()
