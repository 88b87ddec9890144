"""JSON Schemas shared by the API's operations (the OpenAPI document shows them as is)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from idp.admin.api.registry import Param

PROBLEM: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["field", "message"],
            "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
        }},
    },
}

PAGE_PARAMS = (
    Param("page", {"type": "integer", "minimum": 1, "maximum": 1000000, "default": 1},
          "Page number, from 1."),
    Param("per_page", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
          "Items per page (at most 200)."),
)

DATE_TIME = {"type": "string", "format": "date-time"}
NULLABLE_DATE_TIME = {"type": ["string", "null"], "format": "date-time"}
NULLABLE_STRING = {"type": ["string", "null"]}


def page_of(item: dict[str, Any]) -> dict[str, Any]:
    """A page of `item`s: `next` is the URL of the following page, null on the last."""
    return {
        "type": "object",
        "required": ["items", "page", "per_page", "total", "next"],
        "properties": {
            "items": {"type": "array", "items": item},
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1},
            "total": {"type": "integer", "minimum": 0},
            "next": {"type": ["string", "null"]},
        },
    }


def errors_of(*statuses: int) -> dict[int, tuple[str, dict[str, Any] | None]]:
    """The problem responses an operation can give, for its `responses`."""
    texts = {400: "Malformed request", 401: "No valid bearer token",
             403: "Not allowed for this client", 404: "Not found",
             409: "Conflicts with existing data", 422: "Invalid field values"}
    return {status: (texts[status], PROBLEM) for status in statuses}


def timestamp(moment: datetime | None) -> str | None:
    """A stored (naive UTC) time as RFC 3339, e.g. 2026-11-22T09:30:00Z."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC, microsecond=0).isoformat().replace("+00:00", "Z")
