"""The interface every login step implements."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Error
from flask import render_template
from werkzeug.wrappers import Response

from idp.login.transaction import LoginState


class Step:
    """One screen of a login transaction.

    `is_needed` decides from facts only; `submit` records new facts on the transaction
    (or returns a response to show again, e.g. with an error); the caller then
    recomputes which step comes next.
    """

    name: str = ""
    #: True for steps that prove who the person is; the browser session starts once
    #: no such step is left (so consent or a refusal never repeats the sign-in)
    authenticates: bool = False
    #: the error `prompt=none` turns this step into (OIDC Core 3.1.2.6)
    prompt_none_error: type[OAuth2Error]

    def is_needed(self, state: LoginState) -> bool:
        raise NotImplementedError

    def render(self, state: LoginState, **context: Any) -> str:
        raise NotImplementedError

    def submit(self, state: LoginState, form: Any) -> Response | str | None:
        raise NotImplementedError

    def template(self, state: LoginState, **context: Any) -> str:
        """Render `login/<name>.html` with the transaction and client."""
        return render_template(
            f"login/{self.name}.html", step=self, tx=state.tx, client=state.client, **context
        )
