"""A real redis-server (Debian's package) on loopback for the tests: a free port, its own data
directory (append-only file on, so a restart keeps the data), stopped and started at will."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from .serveutil import free_port


class RedisServer:
    def __init__(self, data_dir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:  # scripts/setup.sh installs it; its absence is a broken set-up, not a skip
            raise RuntimeError("redis-server is not installed (scripts/setup.sh installs Debian's redis-server)")
        self.binary = binary
        self.data_dir = data_dir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "yes",
             "--daemonize", "no", "--logfile", str(self.data_dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        import redis

        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=1).ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start: {(self.data_dir / 'redis.log').read_text()[-500:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: Redis writes its append-only file and exits
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def flush(self) -> None:
        import redis

        redis.Redis(port=self.port).flushall()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if os.environ.get("ECG_KEEP_REDIS_DATA") != "1":
            shutil.rmtree(self.data_dir, ignore_errors=True)
