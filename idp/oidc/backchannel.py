"""Back-Channel Logout 1.0: signed logout tokens POSTed to each client of a session."""

from __future__ import annotations

import logging

import requests
from flask import current_app

from idp.clock import to_epoch, utcnow
from idp.db import db
from idp.models import Client, IdpSession, SessionClient
from idp.oidc.id_tokens import sign_jwt
from idp.security.secrets import generate_secret

log = logging.getLogger(__name__)
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_LIFETIME = 120


def notify_clients(record: IdpSession) -> None:
    """POST a logout token to each client of the session with a back-channel URI."""
    timeout = current_app.extensions["idp"].settings.session.backchannel_timeout
    client_ids = db.session.scalars(
        db.select(SessionClient.client_id).filter_by(session_id=record.id)
    ).all()
    for client_id in client_ids:
        client = db.session.execute(
            db.select(Client).filter_by(client_id=client_id)
        ).scalar_one_or_none()
        if client is None or not client.backchannel_logout_uri:
            continue
        token = logout_token(client, record)
        try:
            response = requests.post(
                client.backchannel_logout_uri,
                data={"logout_token": token},
                timeout=timeout,
                allow_redirects=False,  # Back-Channel Logout 2.5: no redirects followed
            )
            if response.status_code >= 400:
                log.warning("back-channel logout to %s: HTTP %s", client_id, response.status_code)
        except requests.RequestException as exc:
            log.warning("back-channel logout to %s failed: %s", client_id, type(exc).__name__)


def logout_token(client: Client, record: IdpSession) -> str:
    """A Logout Token (Back-Channel Logout 2.4) for `client` about `record`."""
    now = to_epoch(utcnow())
    claims = {
        "iss": current_app.extensions["idp"].settings.server.issuer,
        "aud": client.client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_LIFETIME,
        "jti": generate_secret(16),
        "sub": record.user.sub,
        "sid": record.id,
        "events": {BACKCHANNEL_EVENT: {}},
    }
    return sign_jwt(claims, typ="logout+jwt")
