"""WSGI entry point for gunicorn (run `idp init` first).

`make serve-prod`, or: gunicorn -c python:idp.ops.gunicorn_conf 'wsgi:app'
"""

import sys

from idp import create_app
from idp.config import ConfigError
from idp.ops.logs import configure_logging

try:
    app = create_app()
except ConfigError as exc:  # one clear line naming the key, not a traceback
    print(f"idp: error: {exc}", file=sys.stderr)
    raise SystemExit(1) from None
configure_logging(app.extensions["idp"].settings)  # JSON lines on stderr (server.log_format)
