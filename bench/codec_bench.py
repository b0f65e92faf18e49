"""The codec path of the renderer (decode -> composite recorded overlays -> encode, in
parallel segments, then concat + audio) against bare FFmpeg transcodes, on one machine.

Made for the GPU machine, which has no Chromium: the overlays come from record_overlays.py
(captured by the real browser elsewhere). Everything else is the renderer's own code: the relay
path (decode.py -> composite -> encode.py), which now serves only frame maps that are not one
for one; the usual path (burn.py) is measured by run_bench.py and overhead.py.

    python bench/codec_bench.py --events events.pkl --segments 4,8,16 -o result.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import pickle
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from common import bare_transcode_args, commit, machine, make_input

from ecg_ray.capture.overlay import OverlayEvent
from ecg_ray.media import ffmpeg
from ecg_ray.media.concat import join
from ecg_ray.media.models import EncoderSettings, OutputFormat, ProbeResult
from ecg_ray.rendering.models import SegmentSpec
from ecg_ray.rendering.plan import plan_segments, source_frame_map
from ecg_ray.rendering.segment import JobSpec, _Writer
from ecg_ray.scenario.model import Scenario


def _warm(_: int) -> None:
    import numpy  # noqa: F401
    from PIL import Image  # noqa: F401


def _segment_worker(args) -> float:
    job_json, seg_json, src, dst, events = args
    job = JobSpec.model_validate_json(job_json)
    seg = SegmentSpec.model_validate_json(seg_json)
    q: queue.Queue = queue.Queue(maxsize=48)
    t0 = time.perf_counter()
    w = _Writer(job, seg, src, dst, q, threading.Event(), lambda n: None, source_frame_map(job.probe, job.out, seg.start_frame, seg.end_frame))
    w.start()
    for n, (kind, x, y, png) in zip(range(seg.start_frame, seg.end_frame), events):
        while w.is_alive():
            try:
                q.put(OverlayEvent(n, kind, png, x, y), timeout=0.5)
                break
            except queue.Full:
                continue
    w.join()
    if w.error:
        raise w.error
    return time.perf_counter() - t0


def segment_events(all_events, a: int, b: int):
    """Events for frames [a, b) as a segment sees them: a leading "same" becomes the capture it repeats."""
    evs = list(all_events[a:b])
    if evs and evs[0][0] == "same":
        prev = next(e for e in reversed(all_events[:a]) if e[0] == "new")
        evs[0] = prev
    return evs


def ours(src: Path, probe: ProbeResult, out: OutputFormat, events, k: int, threads: int, hwdec: str,
         work: Path, quality: int) -> dict:
    job = JobSpec(job_id="bench", probe=probe, out=out, encoder=EncoderSettings(codec="libx264", quality=quality),
                  scenario=Scenario(scenario={}, cue_ranges=[]), hwdec=hwdec, encoder_threads=threads)
    segs = plan_segments("bench", out.frame_count, k)
    paths = [str(work / f"seg{s.index:03d}.mp4") for s in segs]
    with mp.get_context("spawn").Pool(k) as pool:
        # Warm workers first, as the service's actors are: process start-up is not render time.
        pool.map(_warm, range(k))
        t0 = time.perf_counter()
        seg_times = pool.map(_segment_worker, [
            (job.model_dump_json(), s.model_dump_json(), str(src), p, segment_events(events, s.start_frame, s.end_frame))
            for s, p in zip(segs, paths)])
        t_seg = time.perf_counter() - t0
    dst = work / f"ours_k{k}_t{threads}_{hwdec}.mp4"
    join(paths, [s.frames for s in segs], out, probe, str(src), str(dst))
    total = time.perf_counter() - t0
    return {"segments": k, "x264_threads": threads, "hwdec": hwdec, "seconds": round(total, 2),
            "segments_s": round(t_seg, 2), "concat_s": round(total - t_seg, 2),
            "slowest_segment_s": round(max(seg_times), 2)}


def bare_parallel(src: Path, work: Path, pieces: int, duration: float, fps: float, quality: int, hwdec: str) -> float:
    """The best a bare transcode does here: ``pieces`` time ranges encoded at once."""
    t0 = time.perf_counter()
    procs = []
    for i in range(pieces):
        a, b = duration * i / pieces, duration * (i + 1) / pieces
        args = (["-hwaccel", "cuda"] if hwdec == "cuda" else []) + ["-ss", f"{a:.3f}", "-t", f"{b - a:.3f}"]
        args += bare_transcode_args(src, work / f"bare_piece{i}.mp4", fps, quality, "veryfast",
                                    threads=max(1, (os.cpu_count() or 1) // pieces))
        procs.append(ffmpeg.popen(["-loglevel", "error", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError(p.stderr.read().decode()[-300:])
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", required=True)
    ap.add_argument("--probe", required=True, help="probe JSON of the input (written by --write-probe here)")
    ap.add_argument("--segments", default="4,8,16")
    ap.add_argument("--threads", default="0")
    ap.add_argument("--hwdec", default="none,cuda")
    ap.add_argument("--quality", type=int, default=70)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()

    with open(a.events, "rb") as fh:
        rec = pickle.load(fh)
    meta, events = rec["meta"], rec["events"]
    probe = ProbeResult.model_validate_json(Path(a.probe).read_text())
    work = Path(a.workdir or tempfile.mkdtemp(prefix="ecg-codec-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / "input.mp4"
    make_input(src, meta["frames"] / meta["fps"], meta["height"], str(meta["fps"]))
    probe.path = str(src)
    out = OutputFormat(width=meta["width"], height=meta["height"], fps_num=meta["fps"], fps_den=1,
                       frame_count=meta["frames"])
    fps = float(meta["fps"])
    res: dict = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "commit": commit(),
                 "machine": machine(), "overlays": meta, "runs": []}

    def bare_single(hw: str) -> float:
        t0 = time.perf_counter()
        ffmpeg.run((["-hwaccel", "cuda"] if hw == "cuda" else []) +
                   bare_transcode_args(src, work / "bare.mp4", fps, a.quality, "veryfast"), what="bare")
        return time.perf_counter() - t0

    hwdecs = [h for h in a.hwdec.split(",") if h]
    res["bare_single_s"] = {}
    res["bare_parallel_s"] = {}
    for hw in hwdecs:
        try:
            res["bare_single_s"][hw] = round(bare_single(hw), 2)
            res["bare_parallel_s"][hw] = {str(p): round(bare_parallel(src, work, p, meta["frames"] / fps, fps,
                                                                      a.quality, hw), 2) for p in (4, 8)}
        except Exception as exc:  # noqa: BLE001 - NVDEC may be missing; say so in the result
            res["bare_single_s"][hw] = f"failed: {exc}"[:300]
    print(json.dumps({k: res[k] for k in ("bare_single_s", "bare_parallel_s")}), flush=True)
    for hw in hwdecs:
        for k in [int(x) for x in a.segments.split(",")]:
            for th in [int(x) for x in a.threads.split(",")]:
                try:
                    run = ours(src, probe, out, events, k, th, hw, work, a.quality)
                except Exception as exc:  # noqa: BLE001
                    run = {"segments": k, "x264_threads": th, "hwdec": hw, "error": str(exc)[:300]}
                res["runs"].append(run)
                print(json.dumps(run), flush=True)
    Path(a.output).write_text(json.dumps(res, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
