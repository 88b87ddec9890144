"""New user? Self-registration in the three policy modes, through real SMTP.

Every email leaves through the outbox worker (`deliver_due`) to an aiosmtpd server on
127.0.0.1, and every link is taken from the email as a person would.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.db import db
from idp.models import ActionLink, Contact, User
from idp.notify.worker import deliver_due
from idp.portals import create_portal, update_portal
from tests.conftest import ISSUER
from tests.driver import (
    authorize,
    bearer,
    exchange_code,
    follow_to_client,
    pkce_pair,
    query_of,
    submit_form,
)
from tests.factories import REDIRECT_URI, make_client, make_user
from tests.html_forms import parse_labels, parse_links
from tests.smtp_server import smtp_settings

PASSWORD = "psalms sung over a quiet harbour"
NOT_FOUND = "We don't know you yet: please call the parish office on 555-0100."
HOME_URL = "https://grace.example/ministry"
LINK = re.compile(r"https?://\S+")
CREATE_LINK = "New user? Create an account"


@pytest.fixture
def settings_overrides(smtp_server):
    return smtp_settings(smtp_server)


def make_portal(mode: str, slug: str = "grace", **settings: str):
    create_portal(slug, "Grace Church Ministry")
    return update_portal(slug, {"self_registration": mode, "not_found_message": NOT_FOUND,
                                **settings})


def make_contact(portal, external_id: str, email: str | None, name: str | None = None):
    contact = Contact(portal_id=portal.id, external_id=external_id, email=email, name=name)
    db.session.add(contact)
    db.session.commit()
    return contact


# -- actions ----------------------------------------------------------------------------------


def text_of(response) -> str:
    """The page's text as a person reads it (entities decoded)."""
    return html.unescape(response.get_data(as_text=True))


class Browser:
    """One person's browser, sent by portal `rp` to /authorize (with PKCE)."""

    def __init__(self, http, rp, **params: str) -> None:
        self.http = http
        self.rp = rp
        self.verifier, challenge = pkce_pair()
        self.state = "st-" + rp.client.client_id[:6]
        # The sign-in page, or at once the redirect back to the portal when signed in.
        self.first_response = follow_to_client(http, authorize(
            http, rp.client.client_id, code_challenge=challenge, code_challenge_method="S256",
            state=self.state, nonce="n-1", **params,
        ))

    @property
    def sign_in_page(self):
        assert self.first_response.status_code == 200, self.first_response.location
        return self.first_response

    def open_registration(self):
        href = parse_links(text_of(self.sign_in_page))[CREATE_LINK]
        page = self.http.get(href)
        assert page.status_code == 200, text_of(page)
        return page

    def register(self, email: str, name: str = "Pat Doe"):
        return submit_form(self.http, self.open_registration(), email=email, name=name)

    def open_link(self, link: str):
        return self.http.get(urlsplit(link).path)

    def choose_password(self, link: str, password: str = PASSWORD):
        page = self.open_link(link)
        assert page.status_code == 200, text_of(page)
        return follow_to_client(self.http, submit_form(self.http, page, password=password))

    def id_token(self, response) -> dict:
        """The ID token the portal gets for the code in `response` (a redirect to it)."""
        assert response.status_code == 302 and response.location.startswith(REDIRECT_URI)
        query = query_of(response.location)
        assert query["state"] == self.state
        tokens = exchange_code(self.http, query["code"], self.rp.client.client_id,
                               self.rp.client_secret, self.verifier)
        assert tokens.status_code == 200, tokens.json
        self.access_token = tokens.json["access_token"]
        keys = KeySet.import_key_set(self.http.get("/jwks").json)
        return dict(jwt.decode(tokens.json["id_token"], keys, algorithms=["RS256", "ES256"])
                    .claims)


def emails_to(smtp_server, address: str) -> list:
    deliver_due()
    return [m for m in smtp_server.messages if m["To"] == address]


def emailed_link(smtp_server, address: str, path: str = "/register/") -> str:
    """The link to `path` in the newest email to `address`, the same in text and HTML."""
    [*_, message] = emails_to(smtp_server, address)
    links = [url for url in LINK.findall(smtp_server.text_of(message))
             if urlsplit(url).path.startswith(path)]
    assert len(links) == 1, smtp_server.text_of(message)
    assert links[0].startswith(ISSUER)
    assert links[0] in message.get_body(preferencelist=("html",)).get_content()
    return links[0]


def user_named(email: str) -> User | None:
    db.session.expire_all()
    return db.session.execute(db.select(User).filter_by(email=email)).scalar_one_or_none()


def contacts_of(portal) -> list[Contact]:
    db.session.expire_all()
    return list(db.session.execute(
        db.select(Contact).filter_by(portal_id=portal.id).order_by(Contact.id)).scalars())


# -- off ------------------------------------------------------------------------------------


def test_off_portal_has_no_create_account_link_and_register_says_not_available(http):
    rp = make_client(portal_slug=make_portal("off").slug)
    browser = Browser(http, rp)
    assert CREATE_LINK not in text_of(browser.sign_in_page)
    tx_id = urlsplit(parse_links(text_of(browser.sign_in_page))["Password not working?"]).query
    for url in (f"/register?{tx_id}", "/register?portal=grace", "/register"):
        page = http.get(url)
        assert page.status_code == 404
        assert "Creating an account is not available here" in text_of(page)


def test_posting_the_form_to_an_off_portal_sends_nothing(http, smtp_server):
    make_portal("off")
    response = http.post("/register", data={"portal": "grace", "email": "pat@example.org",
                                            "name": "Pat"})
    assert response.status_code == 404
    assert emails_to(smtp_server, "pat@example.org") == []


@pytest.mark.parametrize("mode", ["match_only", "create"])
def test_open_portal_links_to_a_registration_form_with_email_and_name(http, mode):
    rp = make_client(portal_slug=make_portal(mode).slug)
    page = Browser(http, rp).open_registration()
    assert parse_labels(text_of(page)) == ["Email", "Name"]
    assert "Grace Church Ministry" in text_of(page)


# -- match_only -----------------------------------------------------------------------------


def test_match_only_links_the_new_account_to_the_contact_and_releases_its_claims(
    http, smtp_server
):
    portal = make_portal("match_only")
    contact = make_contact(portal, "1234", "Pat.Doe@Example.org", "Pat Doe")
    rp = make_client(portal_slug=portal.slug)
    browser = Browser(http, rp)

    sent = browser.register("pat.doe@example.org")
    assert sent.status_code == 200 and "Check your email" in text_of(sent)
    link = emailed_link(smtp_server, "pat.doe@example.org")
    done = browser.choose_password(link)

    claims = browser.id_token(done)  # back at the portal with a code
    assert claims["contact_id"] == "1234"
    assert claims["preferred_username"] == "pat.doe1234"
    assert claims["email"] == "pat.doe@example.org" and claims["email_verified"] is True
    assert claims["name"] == "Pat Doe" and claims["nonce"] == "n-1"
    user = user_named("pat.doe@example.org")
    assert user.sub == claims["sub"] and user.email_verified and user.password_hash
    assert db.session.get(Contact, contact.id).user_id == user.id

    info = http.get("/userinfo", headers=bearer(browser.access_token)).json
    assert info["contact_id"] == "1234" and info["preferred_username"] == "pat.doe1234"


def test_match_only_without_a_contact_shows_the_not_found_message_and_creates_nothing(
    http, smtp_server
):
    portal = make_portal("match_only")
    make_contact(portal, "1234", "someone.else@example.org")
    browser = Browser(http, make_client(portal_slug=portal.slug))

    browser.register("stranger@example.org")
    page = browser.open_link(emailed_link(smtp_server, "stranger@example.org"))
    assert page.status_code == 200
    assert NOT_FOUND in text_of(page)
    assert 'type="password"' not in text_of(page)
    # Sending a password anyway is refused the same way.
    refused = http.post(page.request.path, data={"password": PASSWORD})
    assert NOT_FOUND in text_of(refused)
    assert user_named("stranger@example.org") is None
    assert [c.external_id for c in contacts_of(portal)] == ["1234"]


def test_a_contact_added_after_the_not_found_message_matches_on_the_same_link(
    http, smtp_server
):
    portal = make_portal("match_only")
    browser = Browser(http, make_client(portal_slug=portal.slug))
    browser.register("late@example.org")
    link = emailed_link(smtp_server, "late@example.org")
    assert NOT_FOUND in text_of(browser.open_link(link))
    make_contact(portal, "77", "late@example.org")
    claims = browser.id_token(browser.choose_password(link))
    assert claims["contact_id"] == "77"


def test_a_contact_linked_to_someone_else_does_not_match(http, smtp_server):
    portal = make_portal("match_only")
    owner = make_user("first@example.org")
    contact = make_contact(portal, "9", "shared@example.org")
    contact.user_id = owner.id
    db.session.commit()
    browser = Browser(http, make_client(portal_slug=portal.slug))
    browser.register("shared@example.org")
    assert NOT_FOUND in text_of(browser.open_link(emailed_link(smtp_server,
                                                                "shared@example.org")))


# -- create ---------------------------------------------------------------------------------


def test_create_without_a_match_creates_a_contact_and_links_it(http, smtp_server):
    portal = make_portal("create")
    browser = Browser(http, make_client(portal_slug=portal.slug))
    browser.register("newcomer@example.org", name="Nia Newcomer")
    claims = browser.id_token(browser.choose_password(emailed_link(smtp_server,
                                                                   "newcomer@example.org")))
    [contact] = contacts_of(portal)
    user = user_named("newcomer@example.org")
    assert contact.user_id == user.id
    assert (contact.email, contact.name) == ("newcomer@example.org", "Nia Newcomer")
    assert re.fullmatch(r"R\d{8}", contact.external_id)
    assert claims["contact_id"] == contact.external_id
    assert claims["preferred_username"] == "newcomer" + contact.external_id


def test_create_with_a_match_links_the_existing_contact(http, smtp_server):
    portal = make_portal("create")
    make_contact(portal, "500", "member@example.org", "Morgan Member")
    browser = Browser(http, make_client(portal_slug=portal.slug))
    browser.register("member@example.org", name="Morgan Member")
    claims = browser.id_token(browser.choose_password(emailed_link(smtp_server,
                                                                   "member@example.org")))
    assert claims["contact_id"] == "500"
    assert len(contacts_of(portal)) == 1


def test_a_shared_family_email_matches_the_contact_with_the_same_name(http, smtp_server):
    portal = make_portal("match_only")
    make_contact(portal, "11", "family@example.org", "Alex Rivera")
    make_contact(portal, "12", "family@example.org", "Sam Rivera")
    browser = Browser(http, make_client(portal_slug=portal.slug))
    browser.register("family@example.org", name="sam  rivera")
    claims = browser.id_token(browser.choose_password(emailed_link(smtp_server,
                                                                   "family@example.org")))
    assert claims["contact_id"] == "12"


def test_a_shared_family_email_without_a_name_match_is_no_match(http, smtp_server):
    portal = make_portal("match_only")
    make_contact(portal, "11", "family@example.org", "Alex Rivera")
    make_contact(portal, "12", "family@example.org", "Sam Rivera")
    browser = Browser(http, make_client(portal_slug=portal.slug))
    browser.register("family@example.org", name="Jo Rivera")
    page = browser.open_link(emailed_link(smtp_server, "family@example.org"))
    assert NOT_FOUND in text_of(page)


# -- enumeration and proof of the email ------------------------------------------------------


def test_an_email_with_an_account_gets_an_email_and_the_same_response_as_a_new_one(
    app, http, smtp_server
):
    portal = make_portal("create", home_url=HOME_URL)
    make_user("taken@example.org", name="Terry")
    browser = Browser(http, make_client(portal_slug=portal.slug))
    form_page = browser.open_registration()

    taken = submit_form(http, form_page, email="taken@example.org", name="Terry")
    fresh = submit_form(http, form_page, email="fresh@example.org", name="Terry")
    assert taken.status_code == fresh.status_code == 200
    assert text_of(taken).replace("taken@", "X@") == text_of(fresh).replace("fresh@", "X@")

    [message] = emails_to(smtp_server, "taken@example.org")
    assert message["Subject"] == "You already have an account for Grace Church Ministry"
    text = smtp_server.text_of(message)
    assert HOME_URL in text  # sign in at the portal
    assert f"{ISSUER}/reset?portal=grace" in text  # or choose a new password
    assert "/register/" not in text
    [message] = emails_to(smtp_server, "fresh@example.org")
    assert message["Subject"] == "Confirm your email to create your account for " \
                                 "Grace Church Ministry"
    assert db.session.execute(db.select(db.func.count(User.id))).scalar() == 1


def test_nothing_is_created_or_verified_until_the_password_is_chosen(http, smtp_server):
    portal = make_portal("create")
    browser = Browser(http, make_client(portal_slug=portal.slug))
    browser.register("careful@example.org")
    assert user_named("careful@example.org") is None
    page = browser.open_link(emailed_link(smtp_server, "careful@example.org"))
    assert 'type="password"' in text_of(page)
    assert "Create your account" in text_of(page)
    assert user_named("careful@example.org") is None and contacts_of(portal) == []
    browser.choose_password(emailed_link(smtp_server, "careful@example.org"))
    assert user_named("careful@example.org").email_verified is True


def test_a_weak_password_is_refused_and_the_link_stays_usable(http, smtp_server):
    portal = make_portal("create")
    browser = Browser(http, make_client(portal_slug=portal.slug))
    browser.register("weak@example.org")
    link = emailed_link(smtp_server, "weak@example.org")
    refused = browser.choose_password(link, password="password123")
    assert refused.status_code == 200 and "too common" in text_of(refused)
    assert user_named("weak@example.org") is None
    assert browser.choose_password(link).status_code == 302


@pytest.mark.parametrize(
    ("email", "name", "message"),
    [
        ("not-an-email", "Pat", "Enter your email address"),
        ("", "Pat", "Enter your email address"),
        ("pat@example.org", "   ", "Enter your name."),
    ],
    ids=["bad-email", "no-email", "no-name"],
)
def test_an_incomplete_form_is_shown_again_and_sends_nothing(http, smtp_server, email, name,
                                                              message):
    browser = Browser(http, make_client(portal_slug=make_portal("create").slug))
    page = submit_form(http, browser.open_registration(), email=email, name=name)
    assert page.status_code == 200 and message in text_of(page)
    assert 'role="alert"' in text_of(page)
    deliver_due()
    assert smtp_server.messages == []


# -- the link -------------------------------------------------------------------------------


def test_the_link_works_once(http, smtp_server):
    browser = Browser(http, make_client(portal_slug=make_portal("create").slug))
    browser.register("once@example.org")
    link = emailed_link(smtp_server, "once@example.org")
    assert browser.choose_password(link).status_code == 302
    again = browser.open_link(link)
    assert again.status_code == 410 and "already been used" in text_of(again)


def test_the_link_expires_after_the_policy_reset_link_days(http, smtp_server, clock):
    portal = make_portal("create")
    browser = Browser(http, make_client(portal_slug=portal.slug))
    browser.register("slow@example.org")
    link = emailed_link(smtp_server, "slow@example.org")
    clock.advance(24 * 3600 + 1)
    expired = browser.open_link(link)
    assert expired.status_code == 410 and "expired" in text_of(expired)
    assert parse_links(text_of(expired))["Start again"] == "/register?portal=grace"
    assert user_named("slow@example.org") is None


def test_a_second_registration_replaces_the_first_link(http, smtp_server):
    browser = Browser(http, make_client(portal_slug=make_portal("create").slug))
    browser.register("twice@example.org")
    first = emailed_link(smtp_server, "twice@example.org")
    browser.register("twice@example.org")
    second = emailed_link(smtp_server, "twice@example.org")
    assert first != second
    assert browser.open_link(first).status_code == 410
    assert browser.choose_password(second).status_code == 302


def test_a_register_link_is_not_accepted_by_the_set_password_page(http, smtp_server):
    browser = Browser(http, make_client(portal_slug=make_portal("match_only").slug))
    browser.register("sneaky@example.org")
    token = urlsplit(emailed_link(smtp_server, "sneaky@example.org")).path.rsplit("/", 1)[1]
    page = http.get(f"/password/{token}")
    assert page.status_code == 404
    assert http.post(f"/password/{token}", data={"password": PASSWORD}).status_code in (400, 404)
    assert user_named("sneaky@example.org") is None


def test_an_account_made_meanwhile_turns_the_link_into_a_sign_in_hint(http, smtp_server):
    browser = Browser(http, make_client(portal_slug=make_portal("create").slug))
    browser.register("meanwhile@example.org")
    link = emailed_link(smtp_server, "meanwhile@example.org")
    make_user("meanwhile@example.org")
    page = browser.open_link(link)
    assert "You already have an account" in text_of(page)
    assert 'type="password"' not in text_of(page)


def test_a_link_stored_hashed_remembers_the_sign_in_to_resume(http, smtp_server):
    browser = Browser(http, make_client(portal_slug=make_portal("create").slug))
    browser.register("stored@example.org")
    link = emailed_link(smtp_server, "stored@example.org")
    row = db.session.execute(db.select(ActionLink).filter_by(email="stored@example.org")
                             ).scalar_one()
    assert row.purpose == "register" and row.token_hash not in link
    assert row.return_params["state"] == browser.state
    assert row.data == {"name": "Pat Doe"}


def test_registration_from_a_portal_link_lands_on_the_portal_home_page(http, smtp_server):
    portal = make_portal("create", home_url=HOME_URL)
    page = http.get("/register", query_string={"portal": portal.slug})
    assert page.status_code == 200 and "Grace Church Ministry" in text_of(page)
    submit_form(http, page, email="direct@example.org", name="Dee Rect")
    link = emailed_link(smtp_server, "direct@example.org")
    form = http.get(urlsplit(link).path)
    done = submit_form(http, form, password=PASSWORD)
    assert done.status_code == 303 and done.location == HOME_URL
    # Signed in: the portal's sign-in now answers at once with a code.
    browser = Browser(http, make_client(portal_slug=portal.slug))
    assert browser.id_token(browser.first_response)["contact_id"].startswith("R")


# -- claims ---------------------------------------------------------------------------------


def test_contact_claims_are_released_under_profile_only_to_that_portal(http, smtp_server):
    portal = make_portal("create")
    other_portal = create_portal("lakeside", "Lakeside MLS")
    browser = Browser(http, make_client(portal_slug=portal.slug))
    browser.register("claims@example.org")
    browser.id_token(browser.choose_password(emailed_link(smtp_server, "claims@example.org")))

    for rp, scope, expected in [
        (make_client(portal_slug=portal.slug), "openid email", False),
        (make_client(portal_slug=other_portal.slug), "openid profile", False),
        (make_client(), "openid profile", False),
        (make_client(portal_slug=portal.slug), "openid profile", True),
    ]:
        signed_in = Browser(http, rp, scope=scope)  # one sign-in serves every portal
        claims = signed_in.id_token(signed_in.first_response)
        assert ("contact_id" in claims) is expected, (scope, rp.client.portal)
        assert ("preferred_username" in claims) is expected
        info = http.get("/userinfo", headers=bearer(signed_in.access_token)).json
        assert ("contact_id" in info) is expected


def test_a_stored_preferred_username_wins_over_the_default(http, smtp_server):
    portal = make_portal("match_only")
    contact = make_contact(portal, "1234", "pat@example.org")
    contact.preferred_username = "pastor.pat"
    db.session.commit()
    browser = Browser(http, make_client(portal_slug=portal.slug))
    browser.register("pat@example.org")
    claims = browser.id_token(browser.choose_password(emailed_link(smtp_server,
                                                                   "pat@example.org")))
    assert claims["preferred_username"] == "pastor.pat"


def test_discovery_lists_the_portal_claims(http):
    supported = http.get("/.well-known/openid-configuration").json["claims_supported"]
    assert {"contact_id", "preferred_username"} <= set(supported)
