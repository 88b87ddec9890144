"""Drive sign-in flows through the Flask test client, the way a browser and an RP would."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet
from werkzeug.test import TestResponse

from idp.clock import clock as idp_clock
from tests.conftest import ISSUER
from tests.factories import PASSWORD, REDIRECT_URI
from tests.html_forms import parse_forms


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize(http: FlaskClient, client_id: str, **params: Any) -> TestResponse:
    params.setdefault("response_type", "code")
    params.setdefault("redirect_uri", REDIRECT_URI)
    params.setdefault("scope", "openid profile email")
    params.setdefault("state", secrets.token_urlsafe(8))
    params = {k: v for k, v in params.items() if v is not None}
    return http.get("/authorize", query_string={"client_id": client_id, **params})


def submit_form(http: FlaskClient, page: TestResponse, **values: str) -> TestResponse:
    """POST the first form of `page` with its hidden fields plus `values`."""
    form = parse_forms(page.get_data(as_text=True))[0]
    data = {**form.fields, **values}
    return http.post(form.action, data=data)


@dataclass
class Authorized:
    code: str
    state: str | None
    iss: str | None
    location: str


def follow_to_client(http: FlaskClient, response: TestResponse, **step_values: str) -> TestResponse:
    """Follow IdP-internal redirects until the response leaves the IdP or shows a page."""
    for _ in range(10):
        if response.status_code in (302, 303) and response.location.startswith("/"):
            response = http.get(response.location)
            continue
        return response
    raise AssertionError("redirect loop")


def answered_with_code(response: TestResponse) -> bool:
    """True when `response` sends the browser to the client with a code: 302 from
    /authorize or a page, 303 straight from the last form (RFC 9700 4.12)."""
    return response.status_code in (302, 303) and "code" in query_of(response.location)


def sign_in(
    http: FlaskClient,
    client_id: str,
    email: str,
    password: str = PASSWORD,
    consent: bool = True,
    mfa: Callable[[TestResponse], TestResponse] | None = None,
    **params: Any,
) -> Authorized:
    """Authorize, enter credentials (MFA with `mfa(page)`, consent if asked), return the code."""
    response = follow_to_client(http, authorize(http, client_id, **params))
    if response.status_code == 200 and 'name="step" value="password"' in response.get_data(
        as_text=True
    ):
        response = follow_to_client(
            http, submit_form(http, response, email=email, password=password)
        )
    if mfa is not None and (shows_step(response, "mfa_challenge")
                            or shows_step(response, "mfa_enroll")):
        response = follow_to_client(http, mfa(response))
    if consent and response.status_code == 200 and 'value="consent"' in response.get_data(
        as_text=True
    ):
        response = follow_to_client(http, submit_form(http, response, action="allow"))
    # 302 from /authorize or a page; 303 straight from the last form (RFC 9700 4.12).
    assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
    query = query_of(response.location)
    assert "code" in query, response.location
    return Authorized(query["code"], query.get("state"), query.get("iss"), response.location)


def exchange_code(
    http: FlaskClient,
    code: str,
    client_id: str,
    client_secret: str | None = None,
    verifier: str | None = None,
    redirect_uri: str = REDIRECT_URI,
) -> TestResponse:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier:
        data["code_verifier"] = verifier
    return token_request(http, data, client_id, client_secret)


def token_request(
    http: FlaskClient, data: dict[str, str], client_id: str, client_secret: str | None
) -> TestResponse:
    """POST /token with client_secret_basic, or as a public client when no secret."""
    if client_secret is None:
        return http.post("/token", data={**data, "client_id": client_id})
    auth = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    return http.post("/token", data=data, headers={"Authorization": f"Basic {auth}"})


# --- Authorization endpoint helpers (request validation, prompt, consent tests) ---


def authorization_params(client_id: str, **params: Any) -> dict[str, str]:
    """The query `authorize` would send: the driver's defaults, None values dropped."""
    params.setdefault("response_type", "code")
    params.setdefault("redirect_uri", REDIRECT_URI)
    params.setdefault("scope", "openid profile email")
    params.setdefault("state", secrets.token_urlsafe(8))
    return {"client_id": client_id, **{k: v for k, v in params.items() if v is not None}}


def authorize_post(http: FlaskClient, client_id: str, **params: Any) -> TestResponse:
    """The same request as `authorize`, sent as a form POST (OIDC Core 3.1.2.1)."""
    return http.post("/authorize", data=authorization_params(client_id, **params))


def open_login_page(http: FlaskClient, client_id: str, **params: Any) -> TestResponse:
    """Authorize and follow to the first hosted page; fail unless a page is shown."""
    response = follow_to_client(http, authorize(http, client_id, **params))
    assert response.status_code == 200, (response.status_code, response.location)
    return response


def shows_step(response: TestResponse, step: str) -> bool:
    """True when `response` is the hosted page of login step `step`."""
    return response.status_code == 200 and f'name="step" value="{step}"' in response.get_data(
        as_text=True
    )


def authorization_response_params(response: TestResponse) -> dict[str, str]:
    """What the client receives at its redirect URI: by redirect (query; 303 straight
    from the last form) or form_post page."""
    if response.status_code in (302, 303):
        assert response.location.startswith(REDIRECT_URI), response.location
        return query_of(response.location)
    assert response.status_code == 200, response.status_code
    forms = parse_forms(response.get_data(as_text=True))
    assert len(forms) == 1 and forms[0].method == "post", forms
    assert forms[0].action == REDIRECT_URI, forms[0].action
    return dict(forms[0].fields)


def id_token_for(http: FlaskClient, client_id: str, client_secret: str, email: str) -> str:
    """Sign `email` in on `http` and return the ID token the client received."""
    verifier, challenge = pkce_pair()
    result = sign_in(http, client_id, email, code_challenge=challenge,
                     code_challenge_method="S256")
    response = exchange_code(http, result.code, client_id, client_secret, verifier)
    assert response.status_code == 200, response.json
    return str(response.json["id_token"])


# --- Token, refresh, client-authentication and resource endpoint helpers ---

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def bearer(access_token: str) -> dict[str, str]:
    """The Authorization header of a bearer token request (RFC 6750 2.1)."""
    return {"Authorization": f"Bearer {access_token}"}


def basic_auth(client_id: str, client_secret: str) -> dict[str, str]:
    """The Authorization header of client_secret_basic (RFC 6749 2.3.1)."""
    credentials = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


def obtain_tokens(
    http: FlaskClient, client_id: str, email: str, client_secret: str | None = None, **params: Any
) -> dict[str, Any]:
    """Sign `email` in with PKCE and redeem the code; the token response."""
    verifier, challenge = pkce_pair()
    result = sign_in(http, client_id, email, code_challenge=challenge,
                     code_challenge_method="S256", **params)
    response = exchange_code(http, result.code, client_id, client_secret, verifier)
    assert response.status_code == 200, response.json
    return dict(response.json or {})


def refresh_tokens(
    http: FlaskClient,
    refresh_token: str,
    client_id: str,
    client_secret: str | None = None,
    **data: str,
) -> TestResponse:
    """POST a refresh_token grant (client_secret_basic, or client_id only when public)."""
    return token_request(
        http, {"grant_type": "refresh_token", "refresh_token": refresh_token, **data},
        client_id, client_secret,
    )


def endpoint_request(
    http: FlaskClient, path: str, data: dict[str, str], client_id: str,
    client_secret: str | None = None,
) -> TestResponse:
    """POST to /revoke or /introspect with client_secret_basic (client_id only when public)."""
    if client_secret is None:
        return http.post(path, data={**data, "client_id": client_id})
    return http.post(path, data=data, headers=basic_auth(client_id, client_secret))


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt_signing_input(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"


def unsigned_jwt(claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """A JWT built by hand with an empty signature; `alg: none` unless `header` says otherwise."""
    return _jwt_signing_input(header or {"alg": "none", "typ": "JWT"}, claims) + "."


def hs256_jwt(claims: dict[str, Any], secret: bytes, header: dict[str, Any] | None = None) -> str:
    """A JWT MACed with HS256 under `secret`, e.g. a public key's bytes (key confusion)."""
    signing_input = _jwt_signing_input(header or {"alg": "HS256", "typ": "JWT"}, claims)
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def client_assertion(
    key: Any,
    client_id: str,
    audience: str | None = None,
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A private_key_jwt assertion (RFC 7523 3): iss = sub = client_id, aud, exp, jti.

    `claims` override or add claims; a claim given as None is left out.
    """
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience or ISSUER + "/token",
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    alg = "ES256" if key.key_type == "EC" else "RS256"
    protected = {"alg": alg, "kid": key.kid, **(header or {})}
    return jwt.encode(protected, payload, key, algorithms=[protected["alg"]])


def assertion_form(assertion: str) -> dict[str, str]:
    """The form fields of private_key_jwt client authentication (RFC 7523 2.2)."""
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}


# --- MFA helpers ---


def totp_code(secret: str, steps: int = 0) -> str:
    """What a real authenticator app shows now (the IdP's clock), `steps` periods off."""
    return str(pyotp.TOTP(secret).at(int(idp_clock.timestamp()) + 30 * steps))


def shown_totp_secret(page: TestResponse) -> str:
    """The authenticator key written as text beside the QR code, without spaces."""
    found = re.search(r'class="secret"[^>]*>([A-Z2-7 ]+)<', page.get_data(as_text=True))
    assert found, "no authenticator key on the page"
    return found.group(1).replace(" ", "")


def answer_mfa(
    http: FlaskClient, page: TestResponse, code: str, trust_hours: str = "0"
) -> TestResponse:
    """Enter `code` on an MFA page (its first form), choosing a trust period ("0": none)."""
    return submit_form(http, page, code=code, trust_hours=trust_hours)


def with_totp(
    http: FlaskClient, secret: str, trust_hours: str = "0"
) -> Callable[[TestResponse], TestResponse]:
    """An `mfa` answer for `sign_in`: the current code of a real TOTP client."""
    def answer(page: TestResponse) -> TestResponse:
        return answer_mfa(http, page, totp_code(secret), trust_hours)
    return answer


def id_token_claims(http: FlaskClient, id_token: str) -> dict[str, Any]:
    """The verified claims of an ID token, checked against the IdP's published keys."""
    keys = KeySet.import_key_set(http.get("/jwks").json)
    return dict(jwt.decode(id_token, keys, algorithms=["RS256", "ES256"]).claims)


def redeem(http: FlaskClient, client_id: str, client_secret: str | None, code: str,
           verifier: str) -> dict[str, Any]:
    """Exchange `code` and return the ID token's claims."""
    response = exchange_code(http, code, client_id, client_secret, verifier)
    assert response.status_code == 200, response.json
    return id_token_claims(http, str(response.json["id_token"]))
