"""Where the renderer's time goes, one segment in one process, on the same frames:

1. bare FFmpeg transcode (decode + encode in one process);
2. FFmpeg decode | FFmpeg encode through a shell pipe (the cost of splitting the process);
3. the renderer's decode -> Python -> encode relay, no browser (SourceFrames + EncoderProcess);
4. a whole segment with no captions (one FFmpeg decoding, burning in and encoding: burn.py);
5. a whole segment with the benchmark's captions (adds seeks, captures and overlays);
6. the same through the relay (decode -> Python composite -> encode), for comparison.

    python bench/overhead.py --frames 750
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import subprocess
import threading
import time

from common import bare_transcode_args, bench_workdir, commit, machine, make_scenario, save

from ecg_ray import probe
from ecg_ray.capture.browser import CaptionPage
from ecg_ray.config import load_settings
from ecg_ray.media import ffmpeg
from ecg_ray.media.decode import SourceFrames
from ecg_ray.media.encode import EncoderProcess, encoder_args
from ecg_ray.media.models import EncoderSettings
from ecg_ray.rendering.models import RenderOptions, SegmentSpec
from ecg_ray.rendering.plan import output_format, source_frame_map
from ecg_ray.rendering.segment import JobSpec, render_segment
from ecg_ray.scenario.normalize import normalize


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=750)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", default="25")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--name", default=None)
    a = ap.parse_args()
    work, src = bench_workdir(a.workdir, "ecg-overhead-", 60, a.height, a.fps)
    info = probe(str(src))
    out = output_format(info, RenderOptions(), load_settings())
    n = min(a.frames, out.frame_count)
    enc = EncoderSettings(codec="libx264", quality=70)
    res: dict = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "commit": commit(),
                 "machine": machine(), "frames": n, "size": f"{out.width}x{out.height}", "seconds": {}}

    def rec(name: str, seconds: float) -> None:
        res["seconds"][name] = round(seconds, 2)
        print(f"{name:<28} {seconds:6.2f}s", flush=True)

    t = time.perf_counter()
    bare = bare_transcode_args(src, work / "bare.mp4", float(out.fps), 70, enc.preset)
    ffmpeg.run([*bare[:2], "-frames:v", str(n), "-an", *bare[2:]])
    rec("1 bare transcode", time.perf_counter() - t)

    exe = ffmpeg.ffmpeg_exe()
    dec = [exe, "-loglevel", "error", "-i", str(src), "-frames:v", str(n), "-an", "-f", "rawvideo",
           "-pix_fmt", "yuv420p", "-"]
    encc = [exe, "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{out.width}x{out.height}",
            "-framerate", f"{out.fps_num}/{out.fps_den}", "-i", "-", *encoder_args(enc, out), "-y",
            str(work / "pipe.mp4")]
    t = time.perf_counter()
    p1 = subprocess.Popen(dec, stdout=subprocess.PIPE)
    p2 = subprocess.Popen(encc, stdin=p1.stdout)
    p1.stdout.close()
    p2.wait()
    p1.wait()
    rec("2 decode | encode (shell)", time.perf_counter() - t)

    t = time.perf_counter()
    e = EncoderProcess(str(work / "relay.mp4"), enc, out)
    for fr in SourceFrames(str(src), info, out, source_frame_map(info, out, 0, n)):
        e.write(fr)
    e.finish()
    rec("3 python relay", time.perf_counter() - t)

    async def segment(scenario: dict, burn_in: bool = True) -> tuple[float, dict]:
        page = CaptionPage()
        await page.start()
        try:
            sc = normalize(scenario, out.width / out.height)
            st = load_settings()
            job = JobSpec(job_id="oh", probe=info, out=out, encoder=enc, scenario=sc, burn_in_ffmpeg=burn_in,
                          encoder_nice=st.encoder_nice, capture_lanes=st.capture_lanes,
                          lane_hold_bytes=st.lane_hold_mb << 20)
            t0 = time.perf_counter()
            r = await render_segment(page, job, SegmentSpec(job_id="oh", index=0, start_frame=0, end_frame=n),
                                     str(src), str(work / "seg.mp4"), threading.Event())
            return time.perf_counter() - t0, {"captured": r.captured, "screenshots": r.screenshots,
                                               "reused": r.reused, "empty": r.empty,
                                               "page_ms": await page._eval("window.__ecg.timing")}
        finally:
            await page.close()

    s, _ = asyncio.run(segment({"version": "1.3", "cues": []}))
    rec("4 segment, no captions", s)
    s, detail = asyncio.run(segment(make_scenario(60, 12)))
    rec("5 segment, 12 cues", s)
    res["captions"] = detail
    print(detail)
    s, _ = asyncio.run(segment(make_scenario(60, 12), burn_in=False))
    rec("6 segment, 12 cues, relay", s)
    name = a.name or f"overhead-{res['machine']['cores']}core-{a.height}p-{n}f-{dt.date.today().isoformat()}.json"
    print("saved", save(res, name))


if __name__ == "__main__":
    main()
