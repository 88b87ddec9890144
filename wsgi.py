"""WSGI entry point for gunicorn: `gunicorn 'wsgi:app'` (run `idp init` first)."""

from idp import create_app

app = create_app()
