"""The admin console: server-rendered pages under /admin, same look as the hosted pages.

Each page module registers its views on `bp` with `@console_page(permission)`, which signs
the visitor in (idp.admin.access), checks the permission and passes the `Actor` on. Every
form posts with the session's CSRF token (`check_csrf` in the view).
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("console", __name__, url_prefix="/admin")

# Page modules register their views on import (sign-in first: it owns /admin itself).
from idp.admin.console import sign_in  # noqa: E402,F401,I001
from idp.admin.console import people  # noqa: E402,F401
from idp.admin.console import clients  # noqa: E402,F401
from idp.admin.console import portals  # noqa: E402,F401
from idp.admin.console import outbox  # noqa: E402,F401
from idp.admin.console import legacy  # noqa: E402,F401
# The audit log last: it reads what every other section does.
from idp.admin.console import audit  # noqa: E402,F401
