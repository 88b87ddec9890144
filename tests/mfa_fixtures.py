"""Fixtures shared by the MFA tests: a portal that requires MFA, its client, a person.

Import the ones a module needs: `from tests.mfa_fixtures import portal, rp, user  # noqa: F401`.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from idp.portals import create_portal, update_portal
from tests.factories import make_client, make_mfa_method, make_user


@pytest.fixture
def portal(app):
    """Lakeside MLS, where MFA has been required since yesterday."""
    portal = create_portal("mls", "Lakeside MLS")
    update_portal(portal.slug, {"mfa_required_from": str(date.today() - timedelta(days=1))})
    return portal


@pytest.fixture
def rp(portal):
    return make_client(portal_slug=portal.slug)  # authorization_code and refresh_token


@pytest.fixture
def user(app):
    return make_user()


@pytest.fixture
def secret(user):
    """The base32 seed of the person's authenticator app."""
    return make_mfa_method(user, "totp")[1]
