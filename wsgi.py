"""WSGI entry point for gunicorn: `gunicorn 'wsgi:app'` (run `idp init` first)."""

import sys

from idp import create_app
from idp.config import ConfigError

try:
    app = create_app()
except ConfigError as exc:  # one clear line naming the key, not a traceback
    print(f"idp: error: {exc}", file=sys.stderr)
    raise SystemExit(1) from None
