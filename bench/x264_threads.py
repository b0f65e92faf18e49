"""x264 threads per segment, without the rest of the renderer: N FFmpeg transcodes at once, each
of its 1/N of the input (as N segment actors encode their segments), for several thread counts
in turn, over several rounds (a machine whose speed drifts weighs on every count alike).
Wall time and CPU time (all the FFmpegs together) per count: the best and the median.

    python bench/x264_threads.py --height 720 --fps 25 --parallel 2 --threads 1 --threads 4
"""

from __future__ import annotations

import argparse
import datetime as dt
from fractions import Fraction
from pathlib import Path

from common import alternated_rounds, bench_workdir, result_header, run_parallel, save, transcode_args

from ecg_ray.media.encode import quality_to_crf


def one_round(src: Path, work: Path, duration: float, fps: float, parallel: int, threads: int,
              preset: str, crf: int) -> tuple[float, float]:
    part = duration / parallel
    gop = str(int(round(fps * 2)))
    commands = []
    for i in range(parallel):
        args = ["-loglevel", "error", "-ss", f"{i * part:.3f}", "-i", str(src), "-t", f"{part:.3f}", "-an",
                "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-g", gop, "-pix_fmt", "yuv420p"]
        if threads:
            args += ["-threads", str(threads)]
        commands.append(args + ["-y", str(work / f"part{i}.mp4")])
    return run_parallel(commands)


def main() -> None:
    ap = argparse.ArgumentParser()
    transcode_args(ap)
    ap.add_argument("--parallel", type=int, default=2, help="transcodes at once (segment actors)")
    ap.add_argument("--threads", type=int, action="append", default=[],
                    help="x264 threads per transcode (0: FFmpeg's choice); repeatable")
    a = ap.parse_args()
    counts = a.threads or [1, 4]
    work, src = bench_workdir(a.workdir, "ecg-x264-", a.duration, a.height, a.fps)
    fps = float(Fraction(a.fps))  # "25" or "30000/1001"
    per = alternated_rounds(a.rounds, counts, lambda t: one_round(src, work, a.duration, fps, a.parallel, t, a.preset,
                                                                  quality_to_crf(a.quality)))
    result = {
        **result_header("x264 threads per segment"), "input": f"{a.height}p{a.fps}, {a.duration:g} s",
        "parallel": a.parallel, "preset": a.preset, "crf": quality_to_crf(a.quality),
        "threads": per,
    }
    name = a.name or f"x264-threads-{a.height}p-{a.parallel}x-{dt.date.today().isoformat()}.json"
    print("saved", save(result, name))


if __name__ == "__main__":
    main()
