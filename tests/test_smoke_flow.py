"""The code flow end to end through the test client (protocol details live in other modules)."""

from __future__ import annotations

from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import ISSUER
from tests.driver import exchange_code, pkce_pair, sign_in
from tests.factories import make_client, make_user


def test_code_flow_issues_verifiable_id_token_and_userinfo(http):
    user = make_user()
    rp = make_client()
    verifier, challenge = pkce_pair()
    result = sign_in(http, rp.client.client_id, user.email, nonce="n-1",
                     code_challenge=challenge, code_challenge_method="S256")
    assert result.iss == ISSUER
    response = exchange_code(http, result.code, rp.client.client_id, rp.client_secret, verifier)
    assert response.status_code == 200, response.json
    tokens = response.json
    keys = KeySet.import_key_set(http.get("/jwks").json)
    id_token = jwt.decode(tokens["id_token"], keys, algorithms=["RS256"])
    assert id_token.claims["sub"] == user.sub
    assert id_token.claims["nonce"] == "n-1"
    assert id_token.claims["aud"] == [rp.client.client_id]
    assert id_token.claims["amr"] == ["pwd"]
    info = http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.json["sub"] == user.sub and info.json["email"] == user.email


def test_token_and_metadata_endpoints_allow_cross_origin_reads_but_authorize_does_not(http):
    origin = {"Origin": "https://spa.example.org"}
    for path in ("/.well-known/openid-configuration", "/jwks"):
        assert http.get(path, headers=origin).headers["Access-Control-Allow-Origin"] == "*"
    preflight = http.options("/token", headers={**origin, "Access-Control-Request-Method": "POST"})
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    authorize = http.get("/authorize", headers=origin)
    assert "Access-Control-Allow-Origin" not in authorize.headers
