"""Factory functions for test data."""

from __future__ import annotations

from itertools import count
from typing import Any

from idp.clients import NewClient, register_client
from idp.models import User
from idp.users import create_user

_numbers = count(1)
PASSWORD = "a long enough test password"
REDIRECT_URI = "https://rp.example.org/callback"


def make_user(email: str | None = None, password: str = PASSWORD, **kwargs: Any) -> User:
    email = email or f"person{next(_numbers)}@example.org"
    kwargs.setdefault("name", "Test Person")
    kwargs.setdefault("email_verified", True)
    return create_user(email, password, **kwargs)


def make_client(**kwargs: Any) -> NewClient:
    kwargs.setdefault("name", f"Test Portal {next(_numbers)}")
    kwargs.setdefault("redirect_uris", [REDIRECT_URI])
    kwargs.setdefault("first_party", True)
    return register_client(**kwargs)
