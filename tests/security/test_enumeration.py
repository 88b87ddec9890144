"""User enumeration by body and status: nothing an answer says tells whether an account
(or a legacy username) exists.

Each test sends the same request for a known and an unknown identifier of the same
length, each from a fresh browser, and compares status, headers and body once the
values that differ on every page anyway are blanked out: the CSRF token, the sign-in
transaction's id, and the identifier the person typed (echoed back into the form).
Timing is tests/security/test_timing.py's.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.security.conftest import (
    LiveClient,
    LiveIdP,
    LiveResponse,
    Registered,
    add_legacy_account,
    add_legacy_portal,
    login_page,
    open_page,
    submit,
)

WRONG = "not the right password at all"
VOLATILE = [
    (re.compile(r'name="csrf_token" value="[^"]*"'), 'name="csrf_token" value=""'),
    (re.compile(r"/login/[A-Za-z0-9_\-]+"), "/login/TX"),
    (re.compile(r"([?&]tx=)[A-Za-z0-9_\-]+"), r"\1TX"),
]
COMPARED_HEADERS = ("Content-Type", "Content-Length", "Cache-Control", "Location",
                    "Retry-After")


def normalised(response: LiveResponse, typed: str) -> tuple[int, dict[str, str], str]:
    body = response.text.replace(typed, "TYPED")
    for pattern, replacement in VOLATILE:
        body = pattern.sub(replacement, body)
    headers = {name: response.headers.get(name, "") for name in COMPARED_HEADERS}
    return response.status_code, headers, body


def assert_indistinguishable(answer: Callable[[LiveClient, str], LiveResponse],
                             idp: LiveIdP, known: str, unknown: str) -> None:
    assert len(known) == len(unknown), "same length: Content-Length may be compared"
    a = normalised(answer(idp.client(), known), known)
    b = normalised(answer(idp.client(), unknown), unknown)
    assert a[0] == b[0] and a[1] == b[1], (a[:2], b[:2])
    assert a[2] == b[2], first_difference(a[2], b[2])


def first_difference(a: str, b: str) -> str:
    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
              min(len(a), len(b)))
    return f"bodies differ at {at}: {a[at - 80:at + 80]!r} vs {b[at - 80:at + 80]!r}"


def same_length_unknown(email: str) -> str:
    local, domain = email.split("@")
    return "x" * len(local) + "@" + domain


# -- sign-in ------------------------------------------------------------------------------------


def sign_in_answer(idp: LiveIdP, client: Registered | None = None,
                   password: str = WRONG) -> Callable[[LiveClient, str], LiveResponse]:
    def answer(browser: LiveClient, identifier: str) -> LiveResponse:
        page = login_page(idp, browser, client.client_id if client else None)
        return submit(browser, page, email=identifier, password=password)
    return answer


def test_sign_in_with_a_wrong_password_says_the_same_for_known_and_unknown_emails(
        idp: LiveIdP) -> None:
    known = idp.make_person(totp=False).email
    assert_indistinguishable(sign_in_answer(idp), idp, known, same_length_unknown(known))


def test_sign_in_of_a_disabled_account_says_the_same_as_for_an_unknown_email(
        idp: LiveIdP) -> None:
    """Even with its right password, a disabled account is not told apart."""
    from idp.clock import utcnow
    from idp.db import db
    from idp.models import User

    person = idp.make_person(totp=False)
    with idp.context():
        db.session.execute(db.update(User).filter_by(email=person.email).values(
            disabled_at=utcnow()))
        db.session.commit()
        db.session.remove()
    assert_indistinguishable(sign_in_answer(idp, password=person.password), idp,
                             person.email, same_length_unknown(person.email))


# -- reset and registration -----------------------------------------------------------------------


def reset_answer(idp: LiveIdP, portal: str) -> Callable[[LiveClient, str], LiveResponse]:
    def answer(browser: LiveClient, identifier: str) -> LiveResponse:
        return submit(browser, open_page(browser, "/reset", portal=portal), email=identifier)
    return answer


def test_reset_request_says_the_same_for_known_and_unknown_emails(idp: LiveIdP) -> None:
    known = idp.make_person(totp=False).email
    assert_indistinguishable(reset_answer(idp, idp.portal_slug), idp, known,
                             same_length_unknown(known))


def test_registration_says_the_same_for_known_and_unknown_emails(idp: LiveIdP) -> None:
    def answer(browser: LiveClient, identifier: str) -> LiveResponse:
        page = open_page(browser, "/register", portal=idp.portal_slug)
        return submit(browser, page, email=identifier, name="Pat Doe")

    known = idp.make_person(totp=False).email
    assert_indistinguishable(answer, idp, known, same_length_unknown(known))


# -- legacy usernames -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def legacy(idp: LiveIdP) -> Registered:
    client = add_legacy_portal(idp)
    add_legacy_account(idp, "jsmith_agent42", "jordan.smith@example.org")
    return client


def test_legacy_username_with_a_wrong_password_says_the_same_as_an_unknown_one(
        idp: LiveIdP, legacy: Registered) -> None:
    assert_indistinguishable(sign_in_answer(idp, legacy), idp, "jsmith_agent42",
                             "qwerty_agent99")


def test_legacy_username_without_a_password_yet_says_the_same_as_an_unknown_one(
        idp: LiveIdP, legacy: Registered) -> None:
    from idp.db import db
    from idp.portals import find_portal
    from tests.legacy import import_rows, legacy_row

    with idp.context():
        portal = find_portal("oldmls")
        assert portal is not None
        import_rows(portal, legacy_row("invited_agent7", "invited7@example.org", password=None))
        db.session.remove()
    assert_indistinguishable(sign_in_answer(idp, legacy), idp, "invited_agent7",
                             "unknown_agent7")


def test_reset_by_legacy_username_says_the_same_as_for_an_unknown_one(
        idp: LiveIdP, legacy: Registered) -> None:
    assert_indistinguishable(reset_answer(idp, "oldmls"), idp, "jsmith_agent42",
                             "qwerty_agent99")


def test_the_legacy_comparisons_can_see_a_difference(idp: LiveIdP, legacy: Registered) -> None:
    """The control: the right legacy password is answered differently from a wrong one."""
    from tests.legacy import LEGACY_PASSWORD

    wrong = normalised(sign_in_answer(idp, legacy)(idp.client(), "jsmith_agent42"),
                       "jsmith_agent42")
    right = sign_in_answer(idp, legacy, password=LEGACY_PASSWORD)
    assert normalised(right(idp.client(), "jsmith_agent42"), "jsmith_agent42") != wrong
