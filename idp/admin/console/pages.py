"""What every console page shares: the sign-in check, permissions, rendering, redirects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from idp.admin.access import console_actor
from idp.admin.console import bp
from idp.admin.roles import ROLE_LABELS, Actor
from idp.db import db
from idp.errors import PageError
from idp.models import Portal

View = TypeVar("View", bound=Callable[..., Any])


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: str
    permission: str
    hint: str


# The console's sections, in menu order; each page module adds its own with `nav_item`.
NAV: list[NavItem] = []


def nav_item(endpoint: str, label: str, permission: str, hint: str) -> None:
    NAV.append(NavItem(f"console.{endpoint}", label, permission, hint))


@bp.context_processor
def _console_context() -> dict[str, Any]:
    portals = db.session.execute(db.select(Portal.id, Portal.name)).all()
    return {
        "console_nav": [(n.endpoint, n.label, n.permission) for n in NAV],
        "console_nav_hints": {n.endpoint: n.hint for n in NAV},
        "role_labels": ROLE_LABELS,
        "portal_names": dict(portals),
    }


class Forbidden(PageError):
    status_code = 403
    title = "Not allowed"


def console_page(permission: str | None = None) -> Callable[[View], View]:
    """Sign the visitor in (or send them to sign in) and check `permission`.

    The view gets the `Actor` as its first argument. A permission that holds only for some
    portals passes here; the view then checks the portal of what it shows (`require`).
    """

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            actor = console_actor()
            if actor is None:
                return redirect(url_for("console.sign_in", next=request.full_path), 303)
            if permission is not None and not actor.can(permission):
                raise Forbidden("Your role does not allow this page.")
            return view(actor, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def require(actor: Actor, permission: str, portal_id: int | None = None) -> None:
    """Refuse unless `actor` may do `permission` on things of `portal_id`."""
    if not actor.can(permission, portal_id):
        raise Forbidden("Your role does not allow this.")


def render(template: str, actor: Actor, **context: Any) -> str:
    """A console page (templates/admin/), with the actor for the navigation."""
    return render_template(f"admin/{template}.html", actor=actor, client=None, **context)


def safe_next(value: str | None) -> str:
    """A path inside the console only (no open redirect through `next`)."""
    if value and value.startswith("/admin") and not value.startswith("/admin/api") \
            and not urlsplit(value).netloc and "\\" not in value and "//" not in value:
        return value
    return url_for("console.home")


def done(endpoint: str, notice: str | None = None, **values: Any) -> Response:
    """303 back to a page after a POST, with a one-line notice shown there."""
    if notice:
        values["notice"] = notice
    return redirect(url_for(endpoint, **values), 303)
