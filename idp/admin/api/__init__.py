"""The admin REST API, /admin/api/v1: one module per resource, declared with `operation`.

Authentication: client-credentials bearer tokens with scope `idp:admin`
(idp.admin.access.api_actor); errors: RFC 9457 problems (idp.admin.api.problems);
the OpenAPI 3.1 document is built from the declarations (idp.admin.api.openapi).
"""

from __future__ import annotations

# Resource modules register their operations on import.
from idp.admin.api import (
    audit,  # noqa: F401
    clients,  # noqa: F401
    contacts,  # noqa: F401
    invitations,  # noqa: F401
    openapi,  # noqa: F401
    outbox,  # noqa: F401
    portals,  # noqa: F401
    users,  # noqa: F401
)
from idp.admin.api.registry import bp

__all__ = ["bp"]
