"""Stolen or replayed codes and refresh tokens (RFC 6749 4.1.2 and 10.5, RFC 9700 4.14).

A code works once, for its own client and redirect URI; using it twice revokes what the
first use got. Many redemptions at the same instant still issue tokens once. A refresh
token rotates, and reusing an old one revokes the whole family.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.driver import authorization_params, bearer, exchange_code, query_of, refresh_tokens
from tests.security.conftest import TIMEOUT, LiveClient, LiveIdP, signed_in

PARALLEL = 50


@pytest.fixture(scope="module")
def victim(idp: LiveIdP) -> LiveClient:
    return signed_in(idp)


def fresh_code(idp: LiveIdP, browser: LiveClient, scope: str = "openid email") -> str:
    response = browser.get("/authorize", query_string=authorization_params(
        idp.rp.client_id, scope=scope))
    assert response.status_code == 302, response.text[:300]
    return query_of(response.location)["code"]


def redeem(idp: LiveIdP, code: str) -> requests.Response:
    data = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": idp.rp.redirect_uri}
    return requests.post(f"{idp.url}/token", data=data, timeout=TIMEOUT,
                         auth=(idp.rp.client_id, idp.rp.client_secret or ""))


def userinfo_status(idp: LiveIdP, access_token: str) -> int:
    return requests.get(f"{idp.url}/userinfo", headers=bearer(access_token),
                        timeout=TIMEOUT).status_code


def refresh_status(idp: LiveIdP, refresh_token: str) -> int:
    response = refresh_tokens(idp.client(), refresh_token, idp.rp.client_id, idp.rp.client_secret)
    return response.status_code


def test_code_replay_fails_and_revokes_the_tokens_of_the_first_use(
        idp: LiveIdP, victim: LiveClient) -> None:
    code = fresh_code(idp, victim, scope="openid email offline_access")
    first = redeem(idp, code)
    assert first.status_code == 200
    tokens = first.json()
    assert userinfo_status(idp, tokens["access_token"]) == 200

    replay = redeem(idp, code)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert userinfo_status(idp, tokens["access_token"]) == 401
    assert refresh_status(idp, tokens["refresh_token"]) == 400


def test_fifty_parallel_redemptions_of_one_code_issue_tokens_once(
        idp: LiveIdP, victim: LiveClient) -> None:
    code = fresh_code(idp, victim)
    barrier = threading.Barrier(PARALLEL)

    def attempt(_: int) -> requests.Response:
        barrier.wait(timeout=30)
        return redeem(idp, code)

    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        responses = list(pool.map(attempt, range(PARALLEL)))
    assert Counter(r.status_code for r in responses) == {200: 1, 400: PARALLEL - 1}
    assert {r.json()["error"] for r in responses if r.status_code == 400} == {"invalid_grant"}
    # The other attempts were replays: the one token issued is revoked too (RFC 6749 4.1.2).
    [winner] = [r.json() for r in responses if r.status_code == 200]
    assert userinfo_status(idp, winner["access_token"]) == 401


def test_a_code_is_refused_to_another_client(idp: LiveIdP, victim: LiveClient) -> None:
    """Code injection: the public client's attacker presents the confidential client's code."""
    code = fresh_code(idp, victim)
    response = exchange_code(idp.client(), code, idp.public.client_id,
                             redirect_uri=idp.rp.redirect_uri)
    assert response.status_code in (400, 401) and "access_token" not in response.text


def test_a_code_is_refused_with_another_redirect_uri(idp: LiveIdP, victim: LiveClient) -> None:
    code = fresh_code(idp, victim)
    response = exchange_code(idp.client(), code, idp.rp.client_id, idp.rp.client_secret,
                             redirect_uri="https://attacker.example/callback")
    assert response.status_code == 400 and response.json["error"] == "invalid_grant"


def test_refresh_token_reuse_revokes_the_whole_family(idp: LiveIdP, victim: LiveClient) -> None:
    tokens = redeem(idp, fresh_code(idp, victim, scope="openid offline_access")).json()
    rotated = refresh_tokens(idp.client(), tokens["refresh_token"], idp.rp.client_id,
                             idp.rp.client_secret)
    assert rotated.status_code == 200
    newest = rotated.json
    assert newest["refresh_token"] != tokens["refresh_token"]

    # The attacker replays the old refresh token they stole.
    reuse = refresh_tokens(idp.client(), tokens["refresh_token"], idp.rp.client_id,
                           idp.rp.client_secret)
    assert reuse.status_code == 400 and reuse.json["error"] == "invalid_grant"
    # Whoever holds the newest tokens (the client, or the attacker) lost them too.
    assert refresh_status(idp, newest["refresh_token"]) == 400
    assert userinfo_status(idp, newest["access_token"]) == 401
