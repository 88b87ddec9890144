"""People in the admin console: finding a person, their page, and the help-desk actions."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from flask.testing import FlaskClient

from idp.admin.people import person_portal_ids, search_people
from idp.db import db
from idp.mfa.recovery import generate_recovery_codes
from idp.models import (
    AuditEvent,
    Contact,
    IdpSession,
    Invitation,
    MfaMethod,
    OutboxMessage,
    Portal,
    RecoveryCode,
    User,
)
from idp.portals import create_portal
from idp.security import throttle
from tests.admin_fixtures import Staff, console_form, console_sign_in, make_staff
from tests.driver import bearer, exchange_code, pkce_pair, sign_in
from tests.factories import make_client, make_mfa_method, make_user
from tests.legacy import import_rows, legacy_row


@dataclass
class World:
    lakeside: Portal
    grace: Portal
    pat: User  # a Lakeside person: contact L-100, an authenticator app, recovery codes
    pat_secret: str
    ruth: User  # a Grace Church person only
    shared: User  # at both portals


@pytest.fixture
def world(app) -> World:
    lakeside = create_portal("lakeside", "Lakeside MLS")
    grace = create_portal("grace", "Grace Church")
    pat = make_user("pat.jones@example.org", name="Pat Jones")
    ruth = make_user("ruth.walker@example.org", name="Ruth Walker")
    shared = make_user("sam.both@example.org", name="Sam Both")
    db.session.add_all([
        Contact(portal_id=lakeside.id, external_id="L-100", user_id=pat.id,
                preferred_username="patj"),
        Contact(portal_id=grace.id, external_id="G-7", user_id=ruth.id),
        Contact(portal_id=lakeside.id, external_id="L-200", user_id=shared.id),
        Contact(portal_id=grace.id, external_id="G-8", user_id=shared.id),
    ])
    db.session.commit()
    secret = make_mfa_method(pat, "totp")[1]
    return World(lakeside, grace, pat, secret, ruth, shared)


def signed_in(http: FlaskClient, role: str, portal_slug: str | None = None) -> Staff:
    staff = make_staff(role, portal_slug)
    console_sign_in(http, staff)
    return staff


def page_of(http: FlaskClient, user: User) -> str:
    response = http.get(f"/admin/people/{user.id}")
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def post(http: FlaskClient, user: User, action: str, **data: str):
    token = console_form(http, f"/admin/people/{user.id}")
    return http.post(f"/admin/people/{user.id}/{action}", data={**token, **data})


def events(kind: str) -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(db.select(AuditEvent).filter_by(kind=kind)))


def fresh(user: User) -> User:
    db.session.expire_all()
    return db.session.get(User, user.id)


# -- finding people ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["pat.jones", "EXAMPLE.ORG", "pat jones", "L-10", "jsmith_ag"])
def test_search_finds_a_person_by_email_name_contact_id_or_legacy_username(world, text):
    import_rows(world.lakeside, legacy_row("jsmith_agent42", "pat.jones@example.org"))
    from idp.legacy.accounts import link_account
    from tests.legacy import account

    link_account(account(world.lakeside, "jsmith_agent42"), world.pat, "linked")
    db.session.commit()
    found = db.session.scalars(search_people(None, text)).all()
    assert world.pat in found


def test_search_by_a_portal_admin_sees_only_its_portal(world):
    lakeside_only = db.session.scalars(search_people({world.lakeside.id}, "")).all()
    assert set(lakeside_only) == {world.pat, world.shared}
    assert db.session.scalars(search_people({world.lakeside.id}, "G-7")).all() == []
    assert db.session.scalars(search_people(set(), "")).all() == []


def test_wildcards_and_control_characters_in_the_search_are_harmless(world):
    assert db.session.scalars(search_people(None, "%")).all() == []
    assert db.session.scalars(search_people(None, "_")).all() == []
    assert db.session.scalars(search_people(None, "pat\x00.jones")).all() == [world.pat]


def test_a_person_belongs_to_portals_by_contacts_invitations_and_tokens(world, http):
    church_app = make_client(portal_slug="grace")
    assert person_portal_ids(world.pat) == {world.lakeside.id}
    db.session.add(Invitation(portal_id=world.grace.id, email=world.pat.email, message="hi"))
    db.session.commit()
    assert person_portal_ids(world.pat) == {world.lakeside.id, world.grace.id}
    newcomer = make_user()
    assert person_portal_ids(newcomer) == set()
    verifier, challenge = pkce_pair()
    result = sign_in(http, church_app.client.client_id, newcomer.email,
                     code_challenge=challenge, code_challenge_method="S256")
    assert exchange_code(http, result.code, church_app.client.client_id,
                         church_app.client_secret, verifier).status_code == 200
    assert person_portal_ids(newcomer) == {world.grace.id}


def test_support_finds_people_in_the_console(world, http):
    signed_in(http, "support")
    body = http.get("/admin/people", query_string={"q": "walker"}).get_data(as_text=True)
    assert "ruth.walker@example.org" in body and "pat.jones@example.org" not in body
    assert "1 person" in body
    body = http.get("/admin/people").get_data(as_text=True)
    assert "pat.jones@example.org" in body and 'href="/admin/people"' in body


def test_people_search_pages(world, http):
    for number in range(30):
        make_user(f"many{number:02d}@example.net")
    signed_in(http, "admin")
    first = http.get("/admin/people?q=example.net").get_data(as_text=True)
    assert "30 people" in first and "Page 1 of 2" in first
    second = http.get("/admin/people?q=example.net&page=2").get_data(as_text=True)
    assert "many29@example.net" in second and "many00@example.net" not in second
    assert http.get("/admin/people?page=x").status_code == 200


# -- a person's page --------------------------------------------------------------------------


def test_the_person_page_shows_the_account_without_any_secret(world, http, app):
    codes = generate_recovery_codes(world.pat)
    make_mfa_method(world.pat, "sms", "+12035550163")
    signed_in(http, "support")
    assert post(http, world.pat, "reset-email", portal=str(world.lakeside.id)).status_code == 303
    body = page_of(http, world.pat)
    assert "Pat Jones" in body and "Lakeside MLS" in body
    assert "L-100" in body and "patj" in body
    assert "Authenticator app" in body and "Text message" in body
    assert "Recovery codes left: 10" in body
    assert "user.reset_email_sent" in body  # recent events of the person
    # Never a secret: the TOTP seed, a recovery code, the reset link's token, a phone number.
    assert world.pat_secret not in body
    assert not any(code in body for code in codes)
    [message] = db.session.scalars(db.select(OutboxMessage)).all()
    token = re.search(r"/password/([A-Za-z0-9_-]{20,})", message.body_text).group(1)
    assert token not in body
    assert "5550163" not in body and "•••••••••63" in body


def test_a_portal_admin_cannot_see_a_person_of_another_portal(world, http):
    signed_in(http, "portal_admin", "lakeside")
    assert http.get(f"/admin/people/{world.pat.id}").status_code == 200
    assert http.get(f"/admin/people/{world.ruth.id}").status_code == 404
    assert http.get("/admin/people/999999").status_code == 404
    assert "ruth.walker" not in http.get("/admin/people").get_data(as_text=True)
    # Nor act on them: the form of another person, re-pointed, finds nobody.
    token = console_form(http, f"/admin/people/{world.pat.id}")
    response = http.post(f"/admin/people/{world.ruth.id}/end-sessions", data=token)
    assert response.status_code == 404
    assert events("user.sessions_ended") == []


def test_the_page_shows_throttling_and_unlock_clears_it(world, http):
    keys = (throttle.account_key("password", world.pat.email),)
    for _ in range(8):
        throttle.record_failure(*keys)
    method = db.session.scalars(db.select(MfaMethod).filter_by(user_id=world.pat.id)).one()
    method.failed_attempts = 12
    from idp.clock import utcnow

    method.last_failed_at = utcnow()
    db.session.commit()
    staff = signed_in(http, "support")
    body = page_of(http, world.pat)
    assert "Password attempts wait" in body and "codes slowed down" in body
    response = post(http, world.pat, "unlock")
    assert response.status_code == 303
    assert "may try to sign in again" in http.get(response.location).get_data(as_text=True)
    assert throttle.check(*keys).allowed
    db.session.expire_all()
    assert db.session.get(MfaMethod, method.id).failed_attempts == 0
    assert events("user.unlocked")[0].actor == f"admin:{staff.email}"


# -- actions and roles ------------------------------------------------------------------------


def test_support_resets_mfa_with_a_reason(world, http):
    generate_recovery_codes(world.pat)
    signed_in(http, "support")
    response = post(http, world.pat, "reset-mfa", reason="Lost phone, ticket 4711")
    assert response.status_code == 303
    assert db.session.scalars(db.select(MfaMethod).filter_by(user_id=world.pat.id)).all() == []
    assert db.session.scalars(db.select(RecoveryCode).filter_by(user_id=world.pat.id)).all() \
        == []
    [event] = events("user.mfa_reset")
    assert event.subject == world.pat.email and event.details["reason"] == \
        "Lost phone, ticket 4711"
    assert event.actor.startswith("admin:")
    kinds = db.session.scalars(db.select(OutboxMessage.kind)).all()
    assert "mfa_reset" in kinds


@pytest.mark.parametrize("reason", ["   ", "lost\x00phone", "x" * 501])
def test_resetting_mfa_needs_a_reason(world, http, reason):
    signed_in(http, "support")
    response = post(http, world.pat, "reset-mfa", reason=reason)
    assert response.status_code == 400
    assert "reason: " in response.get_data(as_text=True)
    assert db.session.scalars(db.select(MfaMethod).filter_by(user_id=world.pat.id)).all()
    assert events("user.mfa_reset") == []


def test_support_cannot_disable_an_account(world, http):
    signed_in(http, "support")
    assert "Disable account" not in page_of(http, world.pat)
    assert post(http, world.pat, "disable").status_code == 403
    assert fresh(world.pat).is_active
    assert events("user.disabled") == []


def test_disabling_ends_sessions_and_tokens_and_enabling_lets_them_back(world, http, app):
    portal_app = make_client(portal_slug="lakeside")
    person = app.test_client()
    make_user("lee@example.org")
    verifier, challenge = pkce_pair()
    result = sign_in(person, portal_app.client.client_id, "lee@example.org",
                     code_challenge=challenge, code_challenge_method="S256")
    tokens = exchange_code(person, result.code, portal_app.client.client_id,
                           portal_app.client_secret, verifier).json
    assert person.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 200
    lee = db.session.scalars(db.select(User).filter_by(email="lee@example.org")).one()

    signed_in(http, "portal_admin", "lakeside")
    response = post(http, lee, "disable")
    assert response.status_code == 303
    assert "disabled" in http.get(response.location).get_data(as_text=True)
    assert not fresh(lee).is_active
    assert person.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
    assert db.session.scalars(db.select(IdpSession).filter_by(user_id=lee.id,
                                                              ended_at=None)).all() == []
    [event] = events("user.disabled")
    assert event.portal == "lakeside" and event.details["sessions_ended"] == 1

    assert post(http, lee, "enable").status_code == 303
    assert fresh(lee).is_active
    assert len(events("user.enabled")) == 1


def test_a_portal_admin_cannot_disable_or_reset_mfa_of_a_person_shared_with_another_portal(
        world, http):
    signed_in(http, "portal_admin", "lakeside")
    body = page_of(http, world.shared)
    assert "Disable account" not in body
    assert post(http, world.shared, "disable").status_code == 403
    assert post(http, world.shared, "reset-mfa", reason="asked").status_code == 403
    assert fresh(world.shared).is_active
    # What only touches the person's sign-in here and now stays allowed.
    assert post(http, world.shared, "end-sessions").status_code == 303


def test_end_sessions_signs_the_person_out(world, http, app):
    portal_app = make_client(portal_slug="lakeside")
    person = app.test_client()
    make_user("kim@example.org")
    sign_in(person, portal_app.client.client_id, "kim@example.org")
    kim = db.session.scalars(db.select(User).filter_by(email="kim@example.org")).one()
    signed_in(http, "support")
    assert "Not signed in anywhere" not in page_of(http, kim)
    response = post(http, kim, "end-sessions")
    assert "signed out of 1 session" in http.get(response.location).get_data(as_text=True)
    assert "Not signed in anywhere" in page_of(http, kim)
    # The person's browser must sign in again.
    page = person.get("/authorize", query_string={
        "client_id": portal_app.client.client_id, "response_type": "code",
        "redirect_uri": "https://rp.example.org/callback", "scope": "openid",
        "state": "s", "prompt": "none"})
    assert "login_required" in page.location


def test_send_reset_email_for_a_portal(world, http):
    signed_in(http, "portal_admin", "lakeside")
    response = post(http, world.pat, "reset-email", portal=str(world.lakeside.id))
    assert response.status_code == 303
    [message] = db.session.scalars(db.select(OutboxMessage)).all()
    assert message.recipient == world.pat.email and "Lakeside MLS" in message.subject
    [event] = events("user.reset_email_sent")
    assert event.portal == "lakeside"
    # A portal_admin picks its own portal: not none, not another one.
    assert post(http, world.pat, "reset-email", portal="").status_code == 400
    assert post(http, world.pat, "reset-email", portal=str(world.grace.id)).status_code == 400
    assert len(events("user.reset_email_sent")) == 1


def test_invite_a_person_to_a_portal(world, http):
    staff = signed_in(http, "support")
    response = post(http, world.ruth, "invite", portal=str(world.lakeside.id))
    assert response.status_code == 303
    [invitation] = db.session.scalars(db.select(Invitation)).all()
    assert invitation.email == world.ruth.email and invitation.portal_id == world.lakeside.id
    [event] = events("invitation.sent")
    assert event.actor == f"admin:{staff.email}"
    assert post(http, world.ruth, "invite", portal="nowhere").status_code == 400


def test_a_portal_admin_invites_only_to_its_portal(world, http):
    signed_in(http, "portal_admin", "lakeside")
    assert post(http, world.pat, "invite", portal=str(world.grace.id)).status_code == 403
    assert db.session.scalars(db.select(Invitation)).all() == []


ACTIONS = [
    ("reset-email", {"portal": ""}, "user.reset_email_sent"),
    ("reset-mfa", {"reason": "lost phone"}, "user.mfa_reset"),
    ("unlock", {}, "user.unlocked"),
    ("end-sessions", {}, "user.sessions_ended"),
    ("disable", {}, "user.disabled"),
    ("invite", {}, "invitation.sent"),
]


@pytest.mark.parametrize(("action", "data", "kind"), ACTIONS)
def test_every_action_is_audited(world, http, action, data, kind):
    staff = signed_in(http, "admin")
    if action == "invite":
        data = {"portal": str(world.grace.id)}
    response = post(http, world.pat, action, **data)
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    [event] = events(kind)
    assert event.actor == f"admin:{staff.email}" and event.subject == world.pat.email


@pytest.mark.parametrize("token", [None, "wrong"])
@pytest.mark.parametrize(("action", "data", "kind"), [*ACTIONS, ("enable", {}, "user.enabled")])
def test_every_form_needs_the_csrf_token(world, http, action, data, kind, token):
    signed_in(http, "admin")
    if action == "enable":
        world.pat.disabled_at = world.pat.created_at
        db.session.commit()
    if action == "invite":
        data = {"portal": str(world.grace.id)}
    form = dict(data) if token is None else {**data, "csrf_token": token}
    response = http.post(f"/admin/people/{world.pat.id}/{action}", data=form)
    assert response.status_code == 400
    assert events(kind) == []
    assert db.session.scalars(db.select(OutboxMessage)).all() == []
    assert db.session.scalars(db.select(MfaMethod).filter_by(user_id=world.pat.id)).all()
    assert fresh(world.pat).is_active == (action != "enable")


def test_a_person_page_needs_a_sign_in(world, http):
    response = http.get(f"/admin/people/{world.pat.id}")
    assert response.status_code == 303 and "/admin/sign-in" in response.location
    assert http.post(f"/admin/people/{world.pat.id}/disable").status_code == 303
    assert fresh(world.pat).is_active


def test_only_an_administrator_resets_the_mfa_of_staff(world, http, app):
    colleague = make_staff("support")
    signed_in(http, "support")
    db.session.add(Contact(portal_id=world.lakeside.id, external_id="L-9",
                           user_id=colleague.user.id))
    db.session.commit()
    assert "only an administrator" in page_of(http, colleague.user)
    assert post(http, colleague.user, "reset-mfa", reason="asked by phone").status_code == 403
    assert db.session.scalars(db.select(MfaMethod).filter_by(user_id=colleague.user.id)).all()
    admin = app.test_client()
    console_sign_in(admin, make_staff("admin"))
    assert post(admin, colleague.user, "reset-mfa", reason="ticket 12").status_code == 303


def test_an_administrator_cannot_disable_their_own_account(world, http):
    staff = signed_in(http, "admin")
    assert "Disable account" not in page_of(http, staff.user)
    response = post(http, staff.user, "disable")
    assert response.status_code == 400
    assert "your own account" in response.get_data(as_text=True)
    assert fresh(staff.user).is_active
