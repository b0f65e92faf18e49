"""x264 threads per segment, without the rest of the renderer: N FFmpeg transcodes at once, each
of its 1/N of the input (as N segment actors encode their segments), for several thread counts
in turn, over several rounds (a machine whose speed drifts weighs on every count alike).
Wall time and CPU time (all the FFmpegs together) per count: the best and the median.

    python bench/x264_threads.py --height 720 --fps 25 --parallel 2 --threads 1 --threads 4
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import statistics
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from common import commit, machine, make_input, save

from ecg_ray import ffmpeg
from ecg_ray.encode import quality_to_crf


def one_round(src: Path, work: Path, duration: float, fps: float, parallel: int, threads: int,
              preset: str, crf: int) -> tuple[float, float]:
    part = duration / parallel
    gop = str(int(round(fps * 2)))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    procs = []
    for i in range(parallel):
        args = ["-loglevel", "error", "-ss", f"{i * part:.3f}", "-i", str(src), "-t", f"{part:.3f}", "-an",
                "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-g", gop, "-pix_fmt", "yuv420p"]
        if threads:
            args += ["-threads", str(threads)]
        procs.append(ffmpeg.popen(args + ["-y", str(work / f"part{i}.mp4")], stdin=subprocess.DEVNULL))
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError("transcode failed")
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", default="25")
    ap.add_argument("--parallel", type=int, default=2, help="transcodes at once (segment actors)")
    ap.add_argument("--threads", type=int, action="append", default=[],
                    help="x264 threads per transcode (0: FFmpeg's choice); repeatable")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quality", type=int, default=70)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--name", default=None)
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()
    counts = a.threads or [1, 4]
    work = Path(a.workdir or tempfile.mkdtemp(prefix="ecg-x264-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"input_{a.height}p{a.fps}_{int(a.duration)}s.mp4"
    make_input(src, a.duration, a.height, a.fps)
    fps = float(Fraction(a.fps))  # "25" or "30000/1001"
    runs: dict[int, list[tuple[float, float]]] = {t: [] for t in counts}
    for r in range(a.rounds):
        for t in counts:
            wall, cpu = one_round(src, work, a.duration, fps, a.parallel, t, a.preset, quality_to_crf(a.quality))
            runs[t].append((wall, cpu))
            print(f"round {r + 1}: threads {t}: {wall:.1f} s, {cpu:.1f} s CPU", flush=True)
    result = {
        "what": "x264 threads per segment", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit(), "machine": machine(), "input": f"{a.height}p{a.fps}, {a.duration:g} s",
        "parallel": a.parallel, "preset": a.preset, "crf": quality_to_crf(a.quality),
        "threads": {str(t): {"wall_s": [round(w, 2) for w, _ in v], "cpu_s": [round(c, 2) for _, c in v],
                             "wall_best": round(min(w for w, _ in v), 2),
                             "wall_median": round(statistics.median(w for w, _ in v), 2),
                             "cpu_median": round(statistics.median(c for _, c in v), 2)}
                    for t, v in runs.items()},
    }
    for t, v in result["threads"].items():
        print(f"threads {t}: wall median {v['wall_median']} s (best {v['wall_best']}), CPU median {v['cpu_median']} s")
    name = a.name or f"x264-threads-{a.height}p-{a.parallel}x-{dt.date.today().isoformat()}.json"
    print("saved", save(result, name))


if __name__ == "__main__":
    main()
