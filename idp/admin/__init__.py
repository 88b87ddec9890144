"""Administration: the console (/admin) and the REST API (/admin/api/v1), one role model."""

from __future__ import annotations

from flask import Flask
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from idp.admin.api.problems import ApiProblem, is_api_request, problem_response


def init_app(app: Flask) -> None:
    from idp.admin.api import bp as api_bp
    from idp.admin.console import bp as console_bp

    app.register_blueprint(console_bp)
    app.register_blueprint(api_bp)

    @app.errorhandler(ApiProblem)
    def api_problem(problem: ApiProblem) -> Response:
        return problem_response(problem)


def api_error_response(error: Exception) -> Response | None:
    """The API's answer for an error raised anywhere under /admin/api/ (else None)."""
    if not is_api_request():
        return None
    if isinstance(error, HTTPException):
        return problem_response(ApiProblem(error.code or 500, error.description or ""))
    return problem_response(ApiProblem(500, "Please try again in a moment."))
