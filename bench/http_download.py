"""An input download over loopback, the URL client of two commits side by side.

A file of --mb MB is served from another process (sendfile: the server costs next to nothing)
and downloaded the way ``sources.inputs`` does (``request`` + ``read1(1 MiB)`` into a file),
with ``ecg_ray.sources.urls`` as it is now and as it was at --old (a commit, e.g. the last one
before the client moved onto httpx). Alternated pairs; medians of wall time and of the client
process's CPU time.

    python bench/http_download.py --old 68954b6 --mb 200 --pairs 3
"""

from __future__ import annotations

import argparse
import http.server
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

from common import ROOT, commit, machine, save


class _SendFile(http.server.BaseHTTPRequestHandler):
    path_on_disk = ""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        size = os.path.getsize(self.path_on_disk)
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with open(self.path_on_disk, "rb") as fh:
            self.connection.sendfile(fh)

    def log_message(self, *args: object) -> None:
        pass


def serve(path: str) -> None:
    _SendFile.path_on_disk = path
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SendFile)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


def _module_at(rev: str, work: Path) -> ModuleType:
    src = subprocess.run(["git", "show", f"{rev}:ecg_ray/sources/urls.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    path = work / f"urls_{rev}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(f"urls_{rev}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def download(mod: ModuleType, url: str, dest: Path) -> tuple[float, float, int]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    got = 0
    with mod.request(url, mod.NetPolicy(), timeout=30.0) as resp, open(dest, "wb") as fh:
        while chunk := resp.read1(1 << 20):
            got += len(chunk)
            fh.write(chunk)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    dest.unlink()
    return wall, cpu, got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True, help="the commit whose ecg_ray/sources/urls.py is compared")
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--name", default="")
    a = ap.parse_args()
    from ecg_ray.sources import urls as new

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = work / "input.bin"
        with open(src, "wb") as fh:
            for _ in range(a.mb):
                fh.write(os.urandom(1 << 20))
        old = _module_at(a.old, work)
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(src)], stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            url = f"http://127.0.0.1:{server.stdout.readline().strip()}/input.mp4"
            download(new, url, work / "warm.bin")  # page cache and imports warm
            runs: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
            for i in range(a.pairs):
                for label, mod in ((("old", old), ("new", new)) if i % 2 == 0 else (("new", new), ("old", old))):
                    wall, cpu, got = download(mod, url, work / "out.bin")
                    assert got == a.mb << 20, got
                    runs[label].append((wall, cpu))
                    print(f"{label}: {wall:.3f} s wall, {cpu:.3f} s CPU ({a.mb / wall:.0f} MB/s)", flush=True)
        finally:
            server.terminate()
            server.wait()
    med = {k: {"wall_s": statistics.median(w for w, _ in v), "cpu_s": statistics.median(c for _, c in v)}
           for k, v in runs.items()}
    result = {"bench": "http_download", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "commit": commit(), "old": a.old, "mb": a.mb, "pairs": a.pairs, "machine": machine(),
              "runs": runs, "median": med}
    print(med)
    name = a.name or f"http-download-{a.mb}mb-{datetime.now(timezone.utc):%Y-%m-%d}.json"
    print(save(result, name))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(sys.argv[2])
    else:
        main()
