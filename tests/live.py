"""Serve WSGI apps on 127.0.0.1 in background threads for tests over real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import make_server


class _Deferred:
    """A WSGI app set after the server is bound, so the app can know its own port."""

    app: Callable[..., Any] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None
        return self.app(environ, start_response)


@contextmanager
def serve(build: Callable[[str], Callable[..., Any]],
          host_name: str = "127.0.0.1") -> Iterator[str]:
    """Bind a free port, build the app with its base URL, serve until the block ends.

    `host_name` names the server in its URL ("localhost" for WebAuthn, which refuses IP
    addresses); it listens on 127.0.0.1 either way.
    """
    deferred = _Deferred()
    server = make_server("127.0.0.1", 0, deferred, threaded=True)
    base_url = f"http://{host_name}:{server.server_port}"
    deferred.app = build(base_url)
    # shutdown() waits for the loop's next poll: 0.5 s by default, paid by every live test.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield base_url
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
