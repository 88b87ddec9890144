"""Signing in at the hosted page in a real browser, on a desktop and on a phone."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveIdP, LiveRP, Person, Viewport, claims_after, open_sign_in


def assert_signed_in_as(claims: dict[str, Any], person: Person, idp: LiveIdP) -> None:
    assert claims["sub"] == person.sub and claims["email"] == person.email
    assert claims["iss"] == idp.url and claims["amr"] == ["pwd"]
    assert claims["name"] == person.name


def test_person_signs_in_at_the_hosted_page_and_lands_back_at_the_portal(
    page: Page, live_idp: LiveIdP, rp: LiveRP, person: Person, screenshot: Any
) -> None:
    open_sign_in(page, rp, live_idp)
    email, password = page.get_by_label("Email"), page.get_by_label("Password")
    expect(email).to_be_visible()
    expect(password).to_be_visible()
    expect(password).to_have_attribute("type", "password")
    expect(page.get_by_label("Keep me signed in")).not_to_be_checked()
    expect(page.get_by_role("link", name="Password not working?")).to_be_visible()
    screenshot(page, "sign-in")

    email.fill(person.email)
    password.fill(person.password)
    sign_in = page.get_by_role("button", name="Sign in")
    claims = claims_after(page, rp, sign_in.click)

    assert_signed_in_as(claims, person, live_idp)
    assert rp.record["claims"] == claims


def test_wrong_password_shows_the_error_and_keeps_the_typed_email(
    page: Page, live_idp: LiveIdP, rp: LiveRP, person: Person
) -> None:
    open_sign_in(page, rp, live_idp)
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("don't match an account")
    expect(page.get_by_label("Email")).to_have_value(person.email)
    expect(page.get_by_label("Password")).to_have_value("")  # never echoed back
    assert "claims" not in rp.record

    # The page still works: the right password now signs in.
    page.get_by_label("Password").fill(person.password)
    claims = claims_after(page, rp, page.get_by_role("button", name="Sign in").click)
    assert_signed_in_as(claims, person, live_idp)


def test_sign_in_page_has_no_horizontal_scroll(
    page: Page, live_idp: LiveIdP, rp: LiveRP, person: Person, viewport: Viewport
) -> None:
    def assert_fits() -> None:
        scroll_width, inner_width = page.evaluate(
            "[document.scrollingElement.scrollWidth, window.innerWidth]"
        )
        assert scroll_width <= inner_width, f"{viewport.name}: {scroll_width} > {inner_width}"

    open_sign_in(page, rp, live_idp)
    assert_fits()
    # The error message is the longest text on the page: it must wrap, not overflow.
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    assert_fits()


def test_keyboard_alone_signs_in(page: Page, live_idp: LiveIdP, rp: LiveRP, person: Person) -> None:
    open_sign_in(page, rp, live_idp)
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type(person.email)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(person.password)

    claims = claims_after(page, rp, lambda: page.keyboard.press("Enter"))
    assert_signed_in_as(claims, person, live_idp)
