"""The hosted pages of a login transaction."""

from __future__ import annotations

from flask import Blueprint, redirect, request, url_for
from werkzeug.wrappers import Response

from idp.login import flow
from idp.login.steps import next_step
from idp.login.transaction import load_transaction
from idp.security.csrf import check_csrf

bp = Blueprint("login", __name__)


@bp.route("/login/<tx_id>", methods=["GET", "POST"])
def interaction(tx_id: str) -> Response | str:
    """Show the step the transaction needs now, or accept its form."""
    tx = load_transaction(tx_id)
    state = flow.state_for(tx)
    step = next_step(state)
    if step is None:
        return flow.finish(state)
    if not step.authenticates and state.tx.authenticated_at is not None:
        flow.settle_session(state)
    if request.method == "GET":
        return step.render(state)
    check_csrf()
    if request.form.get("step") != step.name:
        # A stale form (another tab moved on): show the current step instead.
        return step.render(state)
    if request.form.get("action") == "deny" and step.name == "consent":
        return flow.deny(state)
    # A step that authenticates also rebinds the transaction to a new browser id, in the
    # same commit (idp.login.transaction.rebind_transaction: session fixation).
    shown = step.submit(state, request.form)
    if shown is None and next_step(state) is None:
        # Nothing more to ask: the answer goes to the client now, a round trip sooner than
        # through the page below, as Keycloak answers its sign-in form. 303, not authlib's
        # 302: after a form of credentials the browser must GET the client's URI (RFC 9700
        # 4.12). A form_post answer is a page (200).
        response = flow.finish(state)
        if response.status_code == 302:
            response.status_code = 303
        return response
    if shown is not None:
        return shown
    # Post/Redirect/Get: the next request recomputes the step from the new facts.
    return redirect(url_for("login.interaction", tx_id=tx.id), 303)
