"""Driving a login transaction: open it, show the next step, finish with a code.

The current step is never stored: `next_step` recomputes it from the transaction's facts
on every request, so steps compose and a resumed or replayed request is always safe.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import AccessDeniedError, InvalidRequestError, OAuth2Error
from flask import current_app, redirect, url_for
from sqlalchemy.exc import NoResultFound
from werkzeug.wrappers import Response

from idp.clock import utcnow
from idp.db import db
from idp.errors import InvalidRequest
from idp.login.sessions import current_session, establish_session
from idp.login.steps import next_step
from idp.login.transaction import (
    LoginContext,
    LoginState,
    acr_for,
    open_transaction,
)
from idp.mfa.trusted import amr_with_trust, current_trust
from idp.models import IdpSession, LoginTransaction
from idp.oidc.id_tokens import InvalidIdTokenHint, read_id_token_hint
from idp.oidc.responses import authorization_response, response_mode_of
from idp.oidc.server import authorization_server, client_by_id, stored_authorization_request


def begin_authorization() -> Response:
    """Handle /authorize: validate the whole request, then sign in or answer at once."""
    request = authorization_server.create_oauth2_request(None)
    live = current_session()
    try:
        grant = authorization_server.get_consent_grant(
            request=request, end_user=live.user if live else None
        )
        hint_sub = _id_token_hint_sub(
            request.payload.data.get("id_token_hint"), grant.redirect_uri
        )
    except OAuth2Error as error:
        return error_response(request, error)
    except ValueError:
        # authlib quotes request values (redirect_uri, response_type) in its error
        # descriptions and refuses to build one with characters an error_description may
        # not carry (RFC 6749 5.2: no '"', '\', non-ASCII): that request is invalid too.
        raise InvalidRequest("The request contains characters that are not allowed.") from None
    params = {key: request.payload.data.get(key) for key in request.payload.data}
    tx = open_transaction(grant.client, params)
    state = LoginState(tx=tx, client=grant.client, session=live, id_token_hint_sub=hint_sub)
    db.session.commit()
    return continue_transaction(state)


def _id_token_hint_sub(hint: str | None, redirect_uri: str) -> str | None:
    if not hint:
        return None
    try:
        return str(read_id_token_hint(hint).get("sub"))
    except InvalidIdTokenHint as exc:
        # The client and redirect URI are already validated, so the error goes back to
        # the client (OIDC Core 3.1.2.6), not to an IdP page a prompt=none RP never sees.
        raise InvalidRequestError(str(exc), redirect_uri=redirect_uri) from exc


def state_for(tx: LoginTransaction) -> LoginState:
    """Rebuild the facts of a transaction for this request."""
    client = client_by_id(tx.client_id)  # once per request: authlib asks for it again
    if client is None:
        raise NoResultFound(f"client {tx.client_id} of a login transaction")
    hint = tx.params.get("id_token_hint")
    hint_sub = None
    if hint:
        try:
            hint_sub = str(read_id_token_hint(hint).get("sub"))
        except InvalidIdTokenHint:
            hint_sub = None
    return LoginState(tx=tx, client=client, session=current_session(), id_token_hint_sub=hint_sub)


def continue_transaction(state: LoginState) -> Response:
    """Finish if no step is needed; with prompt=none answer with the step's error."""
    step = next_step(state)
    if step is None:
        return finish(state)
    if "none" in state.prompts:
        error = step.prompt_none_error(redirect_uri=state.params["redirect_uri"])
        return error_response(_stored_request(state), error)
    return redirect(url_for("login.interaction", tx_id=state.tx.id), 303)


def settle_session(state: LoginState, commit: bool = True) -> IdpSession:
    """Once authentication is complete, the browser's IdP session records it (once)."""
    tx = state.tx
    if tx.authenticated_at is not None and tx.session_id is None:
        assert tx.user is not None
        record = establish_session(tx.user, list(tx.amr), acr_for(list(tx.amr)),
                                   tx.authenticated_at, state.client.policy, tx.keep_signed_in)
        tx.session_id = record.id
        if commit:
            db.session.commit()
        state.session = record
    assert state.session is not None
    return state.session


def finish(state: LoginState) -> Response:
    """Issue the authorization code through authlib and close the transaction."""
    user = state.user
    assert user is not None and state.auth_time is not None
    record = settle_session(state, commit=False)  # committed below, with the completion
    # A browser the person trusts after MFA counts as the second factor (idp.mfa.trusted).
    amr = amr_with_trust(user, state.amr)
    trust = current_trust(user) if "mfa" in amr else None
    if trust is not None:
        # Its refresh tokens may outlive the session for the trust period (idp.oidc.tokens).
        record.trusted_device_id = trust.id
    request = _stored_request(state)
    request.login = LoginContext(  # type: ignore[attr-defined]
        session_id=record.id, auth_time=state.auth_time, acr=acr_for(amr), amr=amr
    )
    state.tx.completed_at = utcnow()
    db.session.commit()
    try:
        grant = authorization_server.get_consent_grant(request=request, end_user=user)
    except OAuth2Error as error:
        return error_response(request, error)
    return authorization_server.create_authorization_response(  # type: ignore[no-any-return]
        request=request, grant_user=user, grant=grant
    )


def deny(state: LoginState) -> Response:
    """The person refused consent: access_denied back to the client."""
    state.tx.completed_at = utcnow()
    db.session.commit()
    error = AccessDeniedError(redirect_uri=state.params["redirect_uri"])
    return error_response(_stored_request(state), error)


def _stored_request(state: LoginState) -> Any:
    issuer = current_app.extensions["idp"].settings.server.issuer
    return stored_authorization_request(state.tx.params, issuer)


def error_response(request: Any, error: OAuth2Error) -> Response:
    """Redirect the error to the client only when its redirect URI was validated.

    authlib sets `error.redirect_uri` only after checking it against the client; errors
    made here carry the redirect URI that was validated when the transaction opened.
    """
    redirect_uri = error.redirect_uri
    if not redirect_uri:
        # RFC 6749 4.1.2.1: never redirect to an unverified URI; tell the person instead.
        raise InvalidRequest(error.description or error.error)
    params = [("error", error.error)]
    if error.description:
        params.append(("error_description", error.description))
    state = request.payload.data.get("state")
    if state:
        params.append(("state", state))
    mode = response_mode_of(request)
    if mode not in ("query", "form_post"):
        mode = "query"
    status, body, headers = authorization_response(redirect_uri, params, mode)
    return Response(body, status=status, headers=headers)
