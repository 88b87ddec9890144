"""Answers computed once per HTTP request (the WSGI environ lives exactly that long).

Only for facts that cannot change within one request in a way that matters to it: the
client looked up (authlib asks for it several times), a nonce checked twice. Never across
requests: a revoked token or a disabled client must take effect on the very next one.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

from flask import has_request_context, request

T = TypeVar("T")
KEY = "idp.per_request"


def per_request(key: Hashable, compute: Callable[[], T]) -> T:
    """`compute()`, or its answer from earlier in this request (outside one: always anew)."""
    if not has_request_context():
        return compute()
    store: dict[Hashable, object] = request.environ.setdefault(KEY, {})
    if key not in store:
        store[key] = compute()
    return store[key]  # type: ignore[return-value]
