"""A server on loopback that drips its answer: /drip/<bytes>/<seconds between>[/nolength]
answers 200 with a Content-Length of 1 GB (or none, the body ending with the connection), then
sends that many bytes every so often, for at most 60 s."""

from __future__ import annotations

import contextlib
import time
from http.server import BaseHTTPRequestHandler

from .serveutil import serving


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        # /drip/<bytes>/<seconds between>[/nolength]: Content-Length says 1 GB (or there is none,
        # the body ending with the connection), then that much every so often
        _, _, size, pause, *rest = self.path.split("/")
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        if rest == ["nolength"]:
            self.send_header("Connection", "close")
        else:
            self.send_header("Content-Length", str(10**9))
        self.end_headers()
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                self.wfile.write(b"x" * int(size))
                self.wfile.flush()
                time.sleep(float(pause))
        except OSError:  # the client went away: what the tests want
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


def dripping_server() -> contextlib.AbstractContextManager[str]:
    """The server's base URL while it runs."""
    return serving(_Handler)
