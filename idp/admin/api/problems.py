"""RFC 9457 problem details: every error of the admin API is `application/problem+json`."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Response

API_PREFIX = "/admin/api/"
MEDIA_TYPE = "application/problem+json"
VALIDATION = "urn:portal-idp:problem:validation"


class ApiProblem(Exception):
    """An error answered as a problem document; `errors` lists field-level problems."""

    def __init__(self, status: int, detail: str, *, title: str | None = None,
                 type_: str = "about:blank", errors: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.type = status, detail, type_
        self.title = title or HTTP_STATUS_CODES.get(status, "Error")
        self.errors = errors
        self.headers = headers or {}


def invalid(detail: str, errors: list[dict[str, str]] | None = None) -> ApiProblem:
    """422: the request was understood but a field is wrong (`errors` names each)."""
    return ApiProblem(422, detail, title="Invalid request", type_=VALIDATION, errors=errors)


def field_error(field: str, message: str) -> ApiProblem:
    """422 for one field, from a domain error whose message reads "field: why"."""
    return invalid(message, [{"field": field, "message": message}])


def from_domain_error(error: ValueError) -> ApiProblem:
    """A domain ValueError ("field: why", as the CLI shows them) as a 422 problem."""
    message = str(error)
    field, sep, _ = message.partition(":")
    return field_error(field.strip() if sep and " " not in field.strip() else "", message)


def is_api_request() -> bool:
    return request.path.startswith(API_PREFIX)


def problem_response(problem: ApiProblem) -> Response:
    body: dict[str, Any] = {"type": problem.type, "title": problem.title,
                            "status": problem.status, "detail": problem.detail,
                            "instance": request.path}
    if problem.errors is not None:
        body["errors"] = problem.errors
    response = jsonify(body)
    response.status_code = problem.status
    response.mimetype = MEDIA_TYPE
    response.headers.update(problem.headers)
    response.headers["Cache-Control"] = "no-store"
    return response
