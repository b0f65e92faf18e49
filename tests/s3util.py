"""Helpers for tests against moto's S3 served over HTTP: a handle on the server, isolated AWS
credentials, and a recording proxy that can inject faults between a client and the server."""

from __future__ import annotations

import http.client
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

# Headers that belong to one hop; the proxy re-frames bodies itself.
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "expect", "proxy-connection"}


@dataclass
class MotoS3:
    """The moto server of the test session."""

    endpoint_url: str
    region: str = "ap-northeast-2"  # Settings' default, so the stores are tested as configured

    @property
    def port(self) -> int:
        return int(self.endpoint_url.rsplit(":", 1)[1])

    def client(self) -> Any:
        """A client for arranging and checking, straight to the server, with its own dummy keys."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 1}),
        )

    def create_bucket(self, name: Optional[str] = None) -> str:
        """A new bucket (a fresh name by default: moto's state is shared by the whole session)."""
        name = name or f"test-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region})
        return name


def aws_env(monkeypatch: Any) -> None:
    """Dummy credentials (moto accepts any) and nothing from this machine's AWS config."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


# What FaultProxy.fault returns for a request: None forwards it; "500" answers an S3 InternalError;
# "drop" closes the connection without an answer; "truncate" sends half the body, then closes.
Fault = Optional[str]


class FaultProxy:
    """An HTTP proxy on loopback in front of a server: records every request as (method, path?query)
    and applies ``fault(method, path)`` to each. ``down = True`` drops every request (S3 unreachable)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.requests: list[tuple[str, str]] = []
        self.fault: Callable[[str, str], Fault] = lambda method, path: None
        self.down = False
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def count(self, method: str, contains: str = "") -> int:
        with self._lock:
            return sum(1 for m, p in self.requests if m == method and contains in p)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.1 so that botocore's "Expect: 100-continue" is answered at once, not after its 1 s wait
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> Optional[bytes]:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length", 0))
                return self.rfile.read(length) if length else None

            def _handle(self) -> None:
                body = self._body()
                with proxy._lock:
                    proxy.requests.append((self.command, self.path))
                action = "drop" if proxy.down else proxy.fault(self.command, self.path)
                if action == "drop":
                    self.close_connection = True
                    return
                if action == "hang":  # S3 stalled: no answer for 8 s, then the connection closes
                    time.sleep(8)
                    self.close_connection = True
                    return
                if action == "500":
                    err = b"<Error><Code>InternalError</Code><Message>injected by FaultProxy</Message></Error>"
                    self.send_response(500)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(err)))
                    self.end_headers()
                    self.wfile.write(err)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                conn = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    resp_headers = resp.getheaders()
                finally:
                    conn.close()
                self.send_response_only(resp.status)
                for k, v in resp_headers:
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                if self.command == "HEAD":  # no body; keep the object's length
                    self.send_header("Content-Length", resp.getheader("Content-Length", "0"))
                    self.end_headers()
                    return
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if action == "truncate":
                    self.wfile.write(data[: len(data) // 2])
                    self.close_connection = True
                    return
                if action == "drip":  # a stalled read: a byte every 0.2 s, for at most 5 s
                    self.close_connection = True
                    end = time.monotonic() + 5
                    try:
                        for i in range(len(data)):
                            if time.monotonic() > end:
                                return
                            self.wfile.write(data[i:i + 1])
                            self.wfile.flush()
                            time.sleep(0.2)
                    except OSError:  # the client went away
                        return
                    return
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        return Handler
