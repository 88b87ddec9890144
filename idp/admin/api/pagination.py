"""Pages of query results: `page`/`per_page` in, `items`/`total`/`next` out (+ Link header)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import request, url_for
from sqlalchemy import Select, func

from idp.db import db


def paginate(statement: Select[Any], query: dict[str, Any],
             serialize: Callable[[Any], dict[str, Any]]) -> tuple[dict[str, Any], int,
                                                                   dict[str, str]]:
    """Run `statement` (ordered) for the requested page; the API view returns this as is."""
    page, per_page = int(query["page"]), int(query["per_page"])
    total = db.session.scalar(
        db.select(func.count()).select_from(statement.order_by(None).subquery())) or 0
    rows = db.session.execute(
        statement.limit(per_page).offset((page - 1) * per_page)).scalars().all()
    next_url = None
    headers: dict[str, str] = {}
    if page * per_page < total:
        args: dict[str, Any] = {**request.args.to_dict(), "page": page + 1,
                                "per_page": per_page}
        next_url = url_for(request.endpoint or "", **(request.view_args or {}), **args,
                           _external=True)
        headers["Link"] = f'<{next_url}>; rel="next"'
    body = {"items": [serialize(row) for row in rows], "page": page, "per_page": per_page,
            "total": total, "next": next_url}
    return body, 200, headers
