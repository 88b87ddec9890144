// A relying party on Node's openid-client (panva), independent of authlib: proof that the
// IdP works with any standard OIDC client library. tests/browser/test_node_rp.py drives it.
//
//   ISSUER=http://127.0.0.1:5000 CLIENT_ID=... CLIENT_SECRET=... PORT=0 node server.mjs
//
// It prints "listening on <base URL>" once it listens (PORT=0: a free port). Discovery
// happens at the first request, so the client can be registered after the port is known.
// Every page answers JSON. Routes:
//   /login       authorization code flow with PKCE (S256), state and nonce
//   /callback    code exchange; openid-client validates the ID token and the response's iss
//                (RFC 9207); then userinfo with the subject checked
//   /refresh     refresh token grant (rotation), then userinfo with the new access token
//   /logout      RP-Initiated Logout with id_token_hint, post_logout_redirect_uri and state
//   /signed-out  where the IdP sends the browser back after logout
//   /            what this RP knows about the browser's sign-in
import crypto from "node:crypto";
import http from "node:http";
import * as oidc from "openid-client";

const { ISSUER, CLIENT_ID, CLIENT_SECRET } = process.env;
const PORT = Number(process.env.PORT ?? 0);
const COOKIE = "node_rp_session";
if (!ISSUER || !CLIENT_ID || !CLIENT_SECRET) {
  console.error("node-rp: ISSUER, CLIENT_ID and CLIENT_SECRET are required");
  process.exit(2);
}

let baseUrl = "";
let configPromise;
const sessions = new Map(); // opaque cookie value -> what this RP holds for that browser

function configuration() {
  configPromise ??= oidc.discovery(
    new URL(ISSUER), CLIENT_ID, undefined, oidc.ClientSecretBasic(CLIENT_SECRET),
    // Plain http is for this test bed on 127.0.0.1 only.
    { execute: [oidc.allowInsecureRequests] },
  );
  return configPromise;
}

function sessionOf(request, response) {
  const cookies = Object.fromEntries((request.headers.cookie ?? "").split(";")
    .map((part) => part.trim().split("=")).filter((pair) => pair.length === 2));
  let id = cookies[COOKIE];
  if (!id || !sessions.has(id)) {
    id = crypto.randomBytes(24).toString("base64url");
    sessions.set(id, {});
    response.setHeader("Set-Cookie", `${COOKIE}=${id}; Path=/; HttpOnly; SameSite=Lax`);
  }
  return sessions.get(id);
}

function json(response, status, body) {
  response.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store" });
  response.end(JSON.stringify(body, null, 2));
}

function redirect(response, location) {
  response.writeHead(302, { Location: location.toString() });
  response.end();
}

async function login(session, response) {
  const config = await configuration();
  const verifier = oidc.randomPKCECodeVerifier();
  session.pending = { verifier, state: oidc.randomState(), nonce: oidc.randomNonce() };
  redirect(response, oidc.buildAuthorizationUrl(config, {
    redirect_uri: `${baseUrl}/callback`,
    scope: "openid profile email",
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state: session.pending.state,
    nonce: session.pending.nonce,
  }));
}

async function callback(session, url, response) {
  const config = await configuration();
  const pending = session.pending;
  if (!pending) return json(response, 400, { error: "no sign-in in progress" });
  delete session.pending;
  const tokens = await oidc.authorizationCodeGrant(config, url, {
    pkceCodeVerifier: pending.verifier,
    expectedState: pending.state,
    expectedNonce: pending.nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);
  Object.assign(session, { tokens, claims, userinfo });
  json(response, 200, { claims, userinfo, refresh_token: Boolean(tokens.refresh_token) });
}

async function refresh(session, response) {
  const config = await configuration();
  if (!session.tokens) return json(response, 400, { error: "not signed in" });
  const previous = session.tokens;
  const tokens = await oidc.refreshTokenGrant(config, previous.refresh_token);
  const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, session.claims.sub);
  session.tokens = { ...tokens, id_token: tokens.id_token ?? previous.id_token };
  json(response, 200, {
    refreshed: true,
    access_token_changed: tokens.access_token !== previous.access_token,
    refresh_token_rotated: Boolean(tokens.refresh_token)
      && tokens.refresh_token !== previous.refresh_token,
    userinfo,
  });
}

async function logout(session, response) {
  const config = await configuration();
  if (!session.tokens) return json(response, 400, { error: "not signed in" });
  session.logoutState = oidc.randomState();
  const idToken = session.tokens.id_token;
  delete session.tokens;
  delete session.claims;
  redirect(response, oidc.buildEndSessionUrl(config, {
    id_token_hint: idToken,
    post_logout_redirect_uri: `${baseUrl}/signed-out`,
    state: session.logoutState,
  }));
}

function signedOut(session, url, response) {
  const stateMatches = Boolean(session.logoutState)
    && url.searchParams.get("state") === session.logoutState;
  delete session.logoutState;
  json(response, stateMatches ? 200 : 400, { signed_out: true, state_matches: stateMatches });
}

const server = http.createServer(async (request, response) => {
  const url = new URL(request.url, baseUrl);
  const session = sessionOf(request, response);
  try {
    switch (url.pathname) {
      case "/login": return await login(session, response);
      case "/callback": return await callback(session, url, response);
      case "/refresh": return await refresh(session, response);
      case "/logout": return await logout(session, response);
      case "/signed-out": return signedOut(session, url, response);
      case "/": return json(response, 200, { signed_in: Boolean(session.claims),
                                             claims: session.claims ?? null });
      default: return json(response, 404, { error: "not found" });
    }
  } catch (error) {
    // openid-client's checks (ID token signature, iss, aud, nonce, state, PKCE) end here.
    json(response, 500, { error: error.message, code: error.code ?? null });
  }
});

server.listen(PORT, "127.0.0.1", () => {
  baseUrl = `http://127.0.0.1:${server.address().port}`;
  console.log(`listening on ${baseUrl}`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => process.exit(0));
}
