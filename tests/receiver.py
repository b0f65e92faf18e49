"""A real HTTP receiver for callback tests: records every request and can fail, stall or go down.

    with Receiver() as rx:
        sender.final("job-1", rx.url_for("/cb"), "completed")
        assert rx.wait_for(lambda reqs: len(reqs) == 1, timeout=5)
        assert rx.events("job-1")[0].json["status"] == "completed"

"Down" comes in two kinds: ``set_down(True)`` answers 503 to everything (the backend is up but
unhealthy); ``set_down(True, hard=True)`` closes the listening socket so connections are refused
(the backend is gone), and ``set_down(False)`` reopens it on the same port.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    json: Any                # the parsed body; None when it is not JSON
    at: float                # time.monotonic() on arrival
    wall: float              # time.time() on arrival (to compare with signature timestamps)
    status: int              # what the receiver answered

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    @property
    def job_id(self) -> str | None:
        return self.json.get("job_id") if isinstance(self.json, dict) else None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: simple, and closing the socket is a clean "down"

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        self.server.receiver._answer(self, body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # reopening on the same port right after closing it
    receiver: Receiver


class Receiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._cond = threading.Condition()
        self._requests: list[Received] = []
        self._fail_left = 0
        self._fail_status = 500
        self._fail_headers: dict[str, str] = {}
        self._soft_down = False
        self._delay_s = 0.0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    def start(self) -> Receiver:
        if self._server is None:
            server = _Server((self.host, self.port), _Handler)
            server.receiver = self
            self.port = server.server_address[1]  # a free port was chosen on the first start
            self._server = server
            self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"receiver-{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()  # the listening socket is closed: connections are refused
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url_for(self, path: str = "/callback") -> str:
        return self.url + path

    # --- controls ---

    def fail_next(self, n: int, status: int = 500, headers: dict[str, str] | None = None) -> None:
        """Answer the next ``n`` requests with ``status`` (and ``headers``, e.g. Location or Retry-After)."""
        with self._cond:
            self._fail_left, self._fail_status, self._fail_headers = n, status, dict(headers or {})

    def set_down(self, down: bool, *, hard: bool = False) -> None:
        """Down: answer 503 (or, ``hard``, close the listening socket). Up: answer normally again,
        reopening the socket on the same port if it was closed."""
        with self._cond:
            self._soft_down = down and not hard
        if down and hard:
            self.stop()
        elif not down:
            self.start()

    def delay(self, seconds: float) -> None:
        """Hold every answer this long (the request is recorded on arrival)."""
        with self._cond:
            self._delay_s = seconds

    def clear(self) -> None:
        with self._cond:
            self._requests.clear()

    # --- what arrived ---

    @property
    def requests(self) -> list[Received]:
        with self._cond:
            return list(self._requests)

    def events(self, job_id: str) -> list[Received]:
        """The requests whose JSON body names ``job_id``, in arrival order."""
        return [r for r in self.requests if r.job_id == job_id]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float) -> bool:
        """Wait until ``predicate(requests)`` holds; False if it still doesn't after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self._requests)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    # --- the handler's side ---

    def _answer(self, handler: _Handler, body: bytes) -> None:
        at, wall = time.monotonic(), time.time()
        extra: dict[str, str] = {}
        with self._cond:
            if self._soft_down:
                status = 503
            elif self._fail_left > 0:
                self._fail_left -= 1
                status, extra = self._fail_status, dict(self._fail_headers)
            else:
                status = 200
            delay = self._delay_s
            try:
                parsed = json.loads(body.decode("utf-8")) if body else None
            except ValueError:
                parsed = None
            self._requests.append(Received(
                method=handler.command,
                path=handler.path,
                headers={k.lower(): v for k, v in handler.headers.items()},
                body=body,
                json=parsed,
                at=at,
                wall=wall,
                status=status,
            ))
            self._cond.notify_all()
        if delay > 0:
            time.sleep(delay)
        payload = json.dumps({"ok": 200 <= status < 300}).encode()
        try:
            handler.send_response(status)
            for k, v in extra.items():
                handler.send_header(k, v)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:  # the client gave up (timeout) while we were delaying
            pass
