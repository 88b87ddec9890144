"""Throttling of client authentication at the token, revocation and introspection endpoints.

A client secret is a credential like a password: failures are counted per client id and
per address, and past the free attempts the endpoint answers 429 with Retry-After
before checking anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import request
from werkzeug.wrappers import Response

from idp.oidc.client_auth import basic_credentials
from idp.security import throttle


def _client_id() -> str:
    client_id, _ = basic_credentials(request.headers)
    if not client_id:
        client_id = request.form.get("client_id", "")
    if not client_id and request.form.get("client_assertion"):
        client_id = "assertion"  # private_key_jwt: the address key does the work
    return str(client_id)[:200]


def throttled_client_auth(view: Callable[..., Response]) -> Callable[..., Response]:
    """Wrap an endpoint that authenticates clients."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        keys = (throttle.client_key("client_auth", _client_id()),
                throttle.address_key("client_auth", request.remote_addr))
        verdict = throttle.check(*keys)
        if not verdict.allowed:
            body = {"error": "invalid_client",
                    "error_description": "Too many failed client authentications; retry later."}
            return Response(json.dumps(body), status=429, mimetype="application/json",
                            headers={"Retry-After": str(max(verdict.wait_seconds, 1)),
                                     "Cache-Control": "no-store"})
        response = view(*args, **kwargs)
        if _is_client_auth_failure(response):
            throttle.record_failure(*keys)
        elif response.status_code == 200:
            throttle.record_success(keys[0], verdict=verdict)
        return response

    return wrapper


def _is_client_auth_failure(response: Response) -> bool:
    if response.status_code == 401:
        return True
    if response.status_code == 400 and response.mimetype == "application/json":
        try:
            return bool(json.loads(response.get_data()).get("error") == "invalid_client")
        except ValueError:
            return False
    return False
