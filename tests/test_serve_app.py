"""`python serve_app.py` as an operator starts it: its own Ray, the app on a port, a job over
HTTP, and a clean stop on SIGTERM (no Ray, Chromium or FFmpeg process left)."""

from __future__ import annotations

import functools
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

from ecg_ray import Client

from .frames import frame_numbers

ROOT = Path(__file__).resolve().parents[1]
CUES = {"version": "1.3", "cues": [{"start": 1.0, "end": 2.0, "text": "서비스 자막"}]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_app_starts_renders_and_stops(numbered, tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(numbered.parent))
    handler.log_message = lambda *a: None
    media = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=media.serve_forever, daemon=True).start()

    port = _free_port()
    # No ECG_PUBLIC_BASE_URL: download links must follow the port it was started on.
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "ECG_PUBLIC_BASE_URL")}
    env.update({"ECG_STATE_DIR": str(tmp_path / "state"), "ECG_OUTPUT_DIR": str(tmp_path / "out"),
                "ECG_TMP_DIR": str(tmp_path / "tmp")})
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "serve_app.py", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(url + "/health", timeout=30).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        else:
            raise AssertionError("not healthy: " + (tmp_path / "serve.log").read_text()[-3000:])

        with Client(url) as c:
            job = c.submit(f"http://127.0.0.1:{media.server_address[1]}/{numbered.name}", CUES)
            out = c.wait(job.job_id, timeout=240, poll=0.5)
            dest = c.download(job.job_id, str(tmp_path / "o.mp4"))
        assert out.frames == 100 and out.location == str(tmp_path / "out" / f"{job.job_id}.mp4")
        assert out.download_url.startswith(f"{url}/api/render/{job.job_id}/download?expires=")
        assert httpx.get(out.download_url, timeout=30).content == Path(dest).read_bytes()
        assert frame_numbers(dest) == list(range(100))

        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("raylet" in p.name() for p in children)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0
        gone, alive = psutil.wait_procs(children, timeout=60)
        left = []
        for p in alive:
            try:
                left.append(f"{p.pid}:{p.name()}")
            except psutil.Error:
                pass
        assert left == [], left
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        media.shutdown()
        media.server_close()
