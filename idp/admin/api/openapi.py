"""The OpenAPI 3.1 document, assembled from the registered operations."""

from __future__ import annotations

from typing import Any

from flask import current_app

from idp.admin.api.registry import OPERATIONS, bp

TAG_TEXT = {
    "clients": "Relying-party applications (OAuth clients)",
    "portals": "Portals: branding and login policy",
    "contacts": "Each portal's directory",
    "users": "People: accounts, legacy import, help-desk actions",
    "invitations": "Invitations, single and bulk",
    "audit": "The append-only audit log",
    "outbox": "Mail and text messages waiting, sent or failed",
}


def build_document() -> dict[str, Any]:
    issuer = current_app.extensions["idp"].settings.server.issuer
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
            "responses": {
                str(status): _response(text, schema, status)
                for status, (text, schema) in sorted(op.responses.items())
            },
        }
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": schema}
            for name, schema in op.path_params.items()
        ] + [
            {"name": p.name, "in": "query", "required": p.required, "schema": p.schema,
             **({"description": p.description} if p.description else {})}
            for p in op.query
        ]
        if parameters:
            entry["parameters"] = parameters
        if op.body is not None:
            entry["requestBody"] = {"required": True,
                                    "content": {op.body_media_type: {"schema": op.body}}}
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Portal IdP admin API",
            "version": "1",
            "description": (
                "Manage clients, portals, contacts, people, invitations and read the audit "
                "log. Authenticate with an access token from the client-credentials grant "
                "with scope `idp:admin`; a client that belongs to a portal acts only "
                "within that portal. Errors are RFC 9457 problem documents."
            ),
        },
        "servers": [{"url": issuer + bp.url_prefix}],
        "security": [{"bearer": []}],
        "tags": [{"name": name, "description": text} for name, text in TAG_TEXT.items()],
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {
            "type": "http", "scheme": "bearer",
            "description": "Client-credentials access token with scope idp:admin",
        }}},
    }


def _response(text: str, schema: dict[str, Any] | None, status: int) -> dict[str, Any]:
    if schema is None:
        return {"description": text}
    media = "application/problem+json" if status >= 400 else "application/json"
    return {"description": text, "content": {media: {"schema": schema}}}


@bp.get("/openapi.json")
def openapi_document() -> Any:
    """Public: the document describes the API, it grants nothing."""
    return build_document()
