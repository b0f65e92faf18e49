"""The render service started for a test module: a fresh local Ray, the app under Serve on a
loopback port (configured as ``python serve_app.py`` configures it), torn down without leaving
the job service actor, Serve or Ray behind."""

from __future__ import annotations

import contextlib
import functools
import http.server
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx


@contextlib.contextmanager
def serving_directory(directory: Path) -> Iterator[str]:
    """A plain HTTP server on loopback for the files in ``directory``: yields its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *a: None
    with serving(handler) as url:
        yield url


@contextlib.contextmanager
def serving(handler: Any) -> Iterator[str]:
    """An HTTP server on loopback with ``handler`` (a request handler class): yields its base URL."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(http: httpx.Client, timeout: float = 240) -> dict:
    """/health's body once it answers 200; fails the test with the last answer otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = http.get("/health")
            if last.status_code == 200:
                return last.json()
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"service not healthy: {last.text if last is not None else 'no answer'}")


@contextlib.contextmanager
def running_service(base: Path, **settings: str) -> Iterator[tuple[str, dict[str, str]]]:
    """Start the service with its state, output and temp directories under ``base`` and the given
    settings (environment variable names); yields its URL and the settings it runs with."""
    import ray
    from ray import serve

    from ecg_ray.config import SERVE_LOGGING, apply_serve_env
    from ecg_ray.service.api import build_app
    from ecg_ray.service.jobs import NAMESPACE, SERVICE_NAME

    if ray.is_initialized():
        ray.shutdown()
    apply_serve_env()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    for d in ("state", "out", "tmp"):
        (base / d).mkdir(exist_ok=True)
    env = {"ECG_STATE_DIR": str(base / "state"), "ECG_OUTPUT_DIR": str(base / "out"),
           "ECG_TMP_DIR": str(base / "tmp"), "ECG_PUBLIC_BASE_URL": url,
           # Off unless a test asks: suites render the same job again to watch it run (cancels,
           # restarts, progress), which the segment cache would answer at once.
           "ECG_SEGMENT_CACHE_MB": "0", **settings}
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=SERVE_LOGGING)
        serve.run(build_app(env), name="ecg_ray", route_prefix="/")
        yield url, env
    finally:
        try:
            actor = ray.get_actor(SERVICE_NAME, namespace=NAMESPACE)
            ray.get(actor.close.remote(), timeout=60)
            ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        serve.shutdown()
        ray.shutdown()
