"""One error hierarchy for the hosted pages; protocol errors come from authlib's classes.

`PageError`s render as an HTML error page (never a redirect, never a stack trace).
"""

from __future__ import annotations


class PageError(Exception):
    """An error shown to a person on an IdP page."""

    status_code = 400
    title = "Something went wrong"

    def __init__(self, description: str, *, title: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        if title:
            self.title = title


class InvalidRequest(PageError):
    """The request cannot be processed and must not be redirected (RFC 6749 4.1.2.1)."""

    title = "This sign-in link is not valid"


class TransactionExpired(PageError):
    """The login transaction is unknown, finished, expired or from another browser."""

    status_code = 400
    title = "This sign-in has expired"


class TooManyAttempts(PageError):
    """A credential check is throttled (brute-force protection)."""

    status_code = 429
    title = "Too many attempts"

    def __init__(self, description: str, *, retry_after: int = 0) -> None:
        super().__init__(description)
        self.retry_after = retry_after  # seconds, for the Retry-After header (RFC 6585 4)


class NotFound(PageError):
    status_code = 404
    title = "Page not found"
