"""Declaring API operations once: the route, its permission, its JSON Schemas.

`@operation(...)` registers a Flask route on the API blueprint *and* its OpenAPI entry, so
the published document (/admin/api/v1/openapi.json) is built from the same declarations
that validate requests: they cannot drift apart. A view receives the `Actor`, the path
variables, `query` (validated and typed) and, when a body schema is declared, `body`.
It returns the JSON-able result, or `(result, status)` / `(result, status, headers)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from flask import Blueprint, jsonify, request
from jsonschema import Draft202012Validator
from werkzeug.wrappers import Response

from idp.admin.access import BearerProblem, api_actor
from idp.admin.api.problems import ApiProblem, invalid
from idp.admin.roles import Actor

bp = Blueprint("admin_api", __name__, url_prefix="/admin/api/v1")


@dataclass(frozen=True)
class Param:
    """A query parameter: its JSON Schema (type integer/string/boolean, enum, bounds)."""

    name: str
    schema: dict[str, Any]
    description: str = ""
    required: bool = False


@dataclass
class Operation:
    method: str
    path: str  # OpenAPI form: /clients/{client_id}
    summary: str
    tag: str
    permission: str | None
    body: dict[str, Any] | None
    query: tuple[Param, ...]
    responses: dict[int, tuple[str, dict[str, Any] | None]]
    operation_id: str
    path_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    body_media_type: str = "application/json"


OPERATIONS: list[Operation] = []


def operation(
    method: str,
    path: str,
    *,
    summary: str,
    tag: str,
    permission: str | None,
    responses: dict[int, tuple[str, dict[str, Any] | None]],
    body: dict[str, Any] | None = None,
    query: tuple[Param, ...] = (),
    path_params: dict[str, dict[str, Any]] | None = None,
    body_media_type: str = "application/json",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `method path` (see the module docstring). `responses`: status -> (text, schema).

    `permission` is checked as "held for some portal"; views check the portal of what
    they touch with `idp.admin.api.registry.require`.
    """

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        op = Operation(method.upper(), path, summary, tag, permission, body, query,
                       responses, view.__name__, dict(path_params or {}), body_media_type)
        OPERATIONS.append(op)
        body_validator = Draft202012Validator(body) if body is not None else None

        @wraps(view)
        def endpoint(**path_values: Any) -> Response:
            actor = _authenticate()
            if permission is not None and not actor.can(permission):
                raise ApiProblem(403, "The client's role does not allow this operation.")
            kwargs: dict[str, Any] = dict(path_values)
            kwargs["query"] = _parse_query(query)
            if body_validator is not None:
                kwargs["body"] = _parse_body(body_validator, body_media_type)
            return _respond(view(actor, **kwargs))

        flask_path = path.replace("{", "<").replace("}", ">")
        bp.add_url_rule(flask_path, endpoint=view.__name__, view_func=endpoint,
                        methods=[op.method])
        return view

    return decorate


def require(actor: Actor, permission: str, portal_id: int | None) -> None:
    """403 unless `actor` may do `permission` on things of `portal_id`."""
    if not actor.can(permission, portal_id):
        raise ApiProblem(403, "The client's role does not allow this for that portal.")


def _authenticate() -> Actor:
    try:
        return api_actor()
    except BearerProblem as problem:
        challenge = 'Bearer realm="admin-api"'
        if problem.error:
            challenge += f', error="{problem.error}"'
        if problem.error == "insufficient_scope":
            challenge += ', scope="idp:admin"'
        raise ApiProblem(problem.status, problem.detail,
                         headers={"WWW-Authenticate": challenge}) from None


def _parse_query(params: tuple[Param, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    for param in params:
        raw = request.args.get(param.name)
        if raw is None:
            if param.required:
                errors.append({"field": param.name, "message": "is required"})
            elif "default" in param.schema:
                values[param.name] = param.schema["default"]
            else:
                values[param.name] = None
            continue
        try:
            value = _coerce(raw, param.schema)
        except ValueError as exc:
            errors.append({"field": param.name, "message": str(exc)})
            continue
        problem = next(Draft202012Validator(param.schema).iter_errors(value), None)
        if problem is not None:
            errors.append({"field": param.name, "message": problem.message})
        values[param.name] = value
    if errors:
        raise invalid("A query parameter is invalid.", errors)
    return values


def _coerce(raw: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type", "string")
    if kind == "integer":
        try:
            return int(raw)
        except ValueError:
            raise ValueError("must be an integer") from None
    if kind == "boolean":
        if raw.lower() in ("true", "1"):
            return True
        if raw.lower() in ("false", "0"):
            return False
        raise ValueError("must be true or false")
    return raw


def _parse_body(validator: Draft202012Validator, media_type: str) -> Any:
    if media_type != "application/json":
        return request.get_data(as_text=True)
    payload = request.get_json(silent=True)
    if payload is None:
        raise ApiProblem(400, "The body must be a JSON document (Content-Type: "
                              "application/json).")
    errors = [{"field": "/".join(str(p) for p in error.absolute_path) or "(body)",
               "message": error.message} for error in validator.iter_errors(payload)]
    if errors:
        raise invalid("The request body does not match the schema.", errors[:20])
    return payload


def _respond(result: Any) -> Response:
    if isinstance(result, Response):
        return result
    status: int = 200
    headers: dict[str, str] = {}
    if isinstance(result, tuple):
        result, status, *rest = result
        headers = rest[0] if rest else {}
    if status == 204:
        response = Response(status=204)
    else:
        response = jsonify(result)
        response.status_code = status
    response.headers.update(headers)
    response.headers["Cache-Control"] = "no-store"
    return response
