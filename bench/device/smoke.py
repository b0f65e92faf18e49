"""Smoke test of the carried bundle on the device machine: one line per check, OK or FAIL.

    source bench/device/env.sh && python3 bench/device/smoke.py [--demo] [--service]

Checks the parts the end-to-end pipeline needs, each on its own so one failure does not hide the
others: package versions, FFmpeg (and a libx264 encode), PyAV, plain Playwright + Chromium with
Korean text (and which font Chromium really used), ecg_ray's own CaptionPage through a still
over the demo clip, a local Ray, and Ray Serve with a FastAPI app answering over HTTP. With
--demo it also renders the built-in demo end to end (``python -m ecg_ray demo``); with --service it
starts the real service (serve_app.py), submits a job over HTTP and downloads the MP4. Images and the
demo go to $OUT when set (the device call brings them back), else /tmp/ecg-smoke.
Exit status: the number of failed checks.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.metadata as md
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = Path(os.environ.get("OUT") or "/tmp/ecg-smoke")
FAILED: list[str] = []


def check(name):
    def deco(fn):
        t0 = time.monotonic()
        try:
            info = fn()
            print(f"OK   {name} ({time.monotonic() - t0:.1f} s){': ' + str(info) if info else ''}", flush=True)
        except BaseException as exc:  # noqa: BLE001 - report every failure and go on
            FAILED.append(name)
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            print(f"FAIL {name} ({time.monotonic() - t0:.1f} s): {last}", flush=True)
            traceback.print_exc(limit=6, file=sys.stdout)
        return fn
    return deco


def versions():
    names = ["ray", "fastapi", "starlette", "uvicorn", "pydantic", "pydantic_core", "playwright", "av",
             "imageio-ffmpeg", "numpy", "pillow", "protobuf", "grpcio", "aiohttp", "msgpack", "psutil",
             "typing_extensions", "httpx", "nvidia-ml-py"]
    out = []
    for n in names:
        try:
            out.append(f"{n}={md.version(n)}")
        except md.PackageNotFoundError:
            out.append(f"{n}=MISSING")
    return f"python {sys.version.split()[0]}; " + " ".join(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo", action="store_true", help="also render the demo end to end")
    ap.add_argument("--service", action="store_true", help="also start serve_app.py and run a job through HTTP")
    ap.add_argument("--nvdec", action="store_true",
                    help="also the NVDEC test decode and tests/test_burn.py's ECG_HWDEC test (auto and cuda)")
    ns = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"smoke: OUT={OUT} ECG_CHROMIUM={os.environ.get('ECG_CHROMIUM')} "
          f"ECG_FFMPEG={os.environ.get('ECG_FFMPEG')}", flush=True)

    @check("versions")
    def _():
        return versions()

    @check("ffmpeg -version and a libx264 encode")
    def _():
        from ecg_ray.media.ffmpeg import ffmpeg_exe

        exe = ffmpeg_exe()
        first = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True,
                               check=True).stdout.splitlines()[0]
        subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        "testsrc2=size=320x240:rate=25:duration=1", "-c:v", "libx264", "-pix_fmt",
                        "yuv420p", str(OUT / "x264.mp4")], check=True, capture_output=True, timeout=60)
        return f"{exe}: {first}"

    @check("PyAV decodes the demo clip")
    def _():
        import av

        with av.open(str(REPO / "ecg_ray/demo/bbb_720p25_5s.mp4")) as c:
            f = next(c.decode(video=0))
        return f"av {av.__version__}, libavcodec {av.library_versions.get('libavcodec')}, frame {f.width}x{f.height}"

    @check("Playwright + Chromium: Korean text to PNG")
    def _():
        from playwright.async_api import async_playwright

        from ecg_ray.capture.browser import _CHROMIUM_ARGS, chromium_executable
        from ecg_ray.config import load_settings

        async def run():
            exe = chromium_executable(load_settings())
            args = list(_CHROMIUM_ARGS) + (["--no-sandbox"] if os.geteuid() == 0 else [])
            async with async_playwright() as pw:
                b = await pw.chromium.launch(executable_path=exe, args=args, headless=True)
                page = await b.new_page(viewport={"width": 640, "height": 160})
                await page.set_content(
                    "<body style='margin:0;background:#fff'><p id=t style=\"font: 700 48px "
                    "'Noto Sans CJK KR', sans-serif\">안녕하세요 한국어 OK</p></body>")
                await page.screenshot(path=str(OUT / "korean.png"))
                cdp = await page.context.new_cdp_session(page)
                await cdp.send("DOM.enable")
                await cdp.send("CSS.enable")
                doc = await cdp.send("DOM.getDocument")
                node = await cdp.send("DOM.querySelector", {"nodeId": doc["root"]["nodeId"], "selector": "#t"})
                fonts = await cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})
                used = ", ".join(f"{f['familyName']}x{f['glyphCount']}" for f in fonts["fonts"])
                version = b.version
                await b.close()
            if "Noto Sans CJK KR" not in used:
                raise RuntimeError(f"Korean text was not drawn with Noto Sans CJK KR: {used}")
            return f"{exe} (Chromium {version}); fonts used: {used}; {OUT / 'korean.png'}"

        return asyncio.run(run())

    @check("ecg_ray still over the demo clip (CaptionPage, page assets, FFmpeg decode, composite)")
    def _():
        from ecg_ray.rendering.still import render_still

        sc = {"version": "1.3", "cues": [{"start": 0, "end": 5, "text": "안녕하세요 device 스모크"}]}
        img, warnings = render_still(sc, 1.0, str(OUT / "still.png"),
                                     input=str(REPO / "ecg_ray/demo/bbb_720p25_5s.mp4"))
        return f"{img.shape}, warnings={warnings}, {OUT / 'still.png'}"

    @check("Ray: local cluster, a task")
    def _():
        import ray

        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            @ray.remote
            def f(x):
                return x * 2

            got = ray.get(f.remote(21))
            assert got == 42, got
            return f"ray {ray.__version__}, resources {ray.cluster_resources()}"
        finally:
            ray.shutdown()

    @check("Ray Serve + FastAPI over HTTP")
    def _():
        import httpx
        import ray
        from fastapi import FastAPI
        from ray import serve

        ray.init(address="local", num_cpus=2, log_to_driver=False)
        try:
            api = FastAPI()

            @serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0})
            @serve.ingress(api)
            class Hello:
                @api.get("/hello")
                def hello(self) -> dict:
                    return {"msg": "안녕"}

            serve.start(http_options={"host": "127.0.0.1", "port": 8091})
            serve.run(Hello.bind(), route_prefix="/")
            r = httpx.get("http://127.0.0.1:8091/hello", timeout=30)
            r.raise_for_status()
            assert r.json() == {"msg": "안녕"}, r.text
            return r.text
        finally:
            try:
                serve.shutdown()
            finally:
                ray.shutdown()

    if ns.demo:
        @check("ecg_ray demo end to end (python -m ecg_ray demo)")
        def _():
            p = subprocess.run([sys.executable, "-m", "ecg_ray", "demo", "-o", str(OUT / "demo.mp4"), "--json"],
                               capture_output=True, text=True, timeout=500, cwd=REPO)
            if p.returncode:
                raise RuntimeError(f"exit {p.returncode}: {(p.stderr or p.stdout)[-2000:]}")
            return p.stdout.strip()[-600:]

    if ns.service:
        @check("serve_app.py: /health, a job through the HTTP API, download")
        def _():
            import httpx

            base = "http://127.0.0.1:8090"
            env = dict(os.environ, ECG_LOCAL_INPUT_DIRS=str(REPO / "ecg_ray/assets"),
                       ECG_OUTPUT_DIR=str(OUT / "service_out"), ECG_STATE_DIR=str(OUT / "service_state"))
            log = open(OUT / "serve_app.log", "w")
            proc = subprocess.Popen([sys.executable, "serve_app.py", "--port", "8090"], cwd=REPO, env=env,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                deadline = time.monotonic() + 240
                health = None
                while time.monotonic() < deadline:
                    if proc.poll() is not None:
                        raise RuntimeError(f"serve_app.py exited {proc.returncode}; see {OUT / 'serve_app.log'}")
                    try:
                        health = httpx.get(f"{base}/health", timeout=10)
                        if health.status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(2)
                else:
                    raise RuntimeError(f"/health not 200 in 240 s: {health and health.text[:300]}")
                body = {"video_url": str(REPO / "ecg_ray/demo/bbb_720p25_5s.mp4"),
                        "scenario": {"version": "1.3", "cues": [{"start": 0, "end": 3, "text": "서비스 스모크"}]}}
                r = httpx.post(f"{base}/api/render/process", json=body, timeout=30)
                r.raise_for_status()
                job = r.json()["job_id"]
                while time.monotonic() < deadline + 240:
                    st = httpx.get(f"{base}/api/render/{job}/status", timeout=10).json()
                    if st["state"] in ("completed", "failed", "cancelled"):
                        break
                    time.sleep(1)
                if st["state"] != "completed":
                    raise RuntimeError(f"job {job}: {st}")
                mp4 = httpx.get(f"{base}/api/render/{job}/download", timeout=60)
                mp4.raise_for_status()
                return f"health {health.json()}; job {job} completed, {len(mp4.content)} bytes"
            finally:
                os.killpg(proc.pid, 15)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)

    if ns.nvdec:
        @check("NVDEC: a test decode, then a segment decoded by it against the CPU's, frame for frame")
        def _():
            import tempfile
            from fractions import Fraction

            from ecg_ray.media.decode import nvdec_check
            from ecg_ray.media.testclip import make_numbered_video

            why = nvdec_check()
            if why:
                raise RuntimeError(f"NVDEC does not decode here: {why}")
            sys.path.insert(0, str(REPO))
            from tests.test_burn import test_hwdec_auto_uses_nvdec_where_it_decodes_and_the_cpu_elsewhere as t

            work = Path(tempfile.mkdtemp(prefix="ecg-nvdec-"))
            src = work / "numbered.mp4"
            make_numbered_video(str(src), 100, Fraction(25), (320, 240), audio=True, beep_frames=(10, 50, 90))
            for burn_in in (True, False):
                (work / str(burn_in)).mkdir()
                t(src, work / str(burn_in), burn_in)
            return f"GPUs seen: {os.environ.get('CUDA_VISIBLE_DEVICES', 'all')}; burn and relay paths passed"

    print(f"smoke: {len(FAILED)} failed{': ' + ', '.join(FAILED) if FAILED else ''}", flush=True)
    return len(FAILED)


if __name__ == "__main__":
    sys.exit(main())
