"""Decoder and filter threads of the segment FFmpeg, without the rest of the renderer: N copies
of the burn graph at once (`burn_graph_cost.py`'s last-but-one step: the source decoded, a
transparent band overlaid on 88% of the frames, x264 with the renderer's settings), each on its
1/N of the input, as N segment actors run them. FFmpeg gives each decoder and each filter graph
as many threads as the machine has cores; with many segments per machine that is many more
threads than cores. Variants ``DEC:FILT`` (0: FFmpeg's choice), alternated rounds.

    python bench/ffmpeg_threads.py --height 1080 --fps 30 --parallel 8 --variant 0:0 --variant 2:1
"""

from __future__ import annotations

import argparse
import datetime as dt
from fractions import Fraction
from pathlib import Path

from burn_graph_cost import steps
from common import alternated_rounds, bench_workdir, result_header, run_parallel, save, transcode_args

from ecg_ray.media.encode import quality_to_crf

STEP = "8 + the overlay band, enabled on 88% of frames"


def with_threads(args: list[str], dec: int, filt: int) -> list[str]:
    """``args`` with the decoder's threads (an input option: before the source's -i) and the
    filter graph's; 0 leaves FFmpeg's choice."""
    out = list(args)
    if dec:
        i = out.index("-i")
        out[i:i] = ["-threads", str(dec)]
    if filt:
        i = out.index("-filter_complex")
        out[i:i] = ["-filter_complex_threads", str(filt)]
    return out


def one_round(variants: list[list[str]], work: Path) -> tuple[float, float]:
    return run_parallel([args + ["-f", "mp4", "-y", str(work / f"part{i}.mp4")] for i, args in enumerate(variants)])


def main() -> None:
    ap = argparse.ArgumentParser()
    transcode_args(ap)
    ap.add_argument("--parallel", type=int, default=2, help="segment FFmpegs at once (segment actors)")
    ap.add_argument("--threads", type=int, default=4, help="x264 threads per segment (ECG_ENCODER_THREADS)")
    ap.add_argument("--variant", action="append", default=[],
                    help="DEC:FILT, decoder and filter-graph threads per segment (0: FFmpeg's choice); repeatable")
    a = ap.parse_args()
    keys = a.variant or ["0:0", "2:1"]
    work, src = bench_workdir(a.workdir, "ecg-fthreads-", a.duration, a.height, a.fps)
    fps = Fraction(a.fps)
    total = int(a.duration * float(fps))
    frames = total // a.parallel
    # One segment's command per slot, seeking to its own range (steps() takes the second half of
    # a two-segment split; the seek is rewritten to this slot's start, as burn.py seeks).
    base = steps(src, a.height, fps, frames, quality_to_crf(a.quality), a.preset, a.threads)[STEP]
    ss = base.index("-ss") + 1
    slots = []
    for i in range(a.parallel):
        cmd = list(base)
        cmd[ss] = f"{(i * frames + 0.5) / float(fps):.6f}"
        slots.append(cmd)

    def one(key: str) -> tuple[float, float]:
        dec, filt = (int(v) for v in key.split(":"))
        return one_round([with_threads(c, dec, filt) for c in slots], work)

    per = alternated_rounds(a.rounds, keys, one)
    result = {
        **result_header("decoder and filter threads per segment FFmpeg"),
        "input": f"{a.height}p{a.fps}, {a.duration:g} s", "parallel": a.parallel, "x264_threads": a.threads,
        "preset": a.preset, "crf": quality_to_crf(a.quality), "step": STEP,
        "variants": per,
    }
    name = a.name or f"ffmpeg-threads-{a.height}p-{a.parallel}x-{dt.date.today().isoformat()}.json"
    print("saved", save(result, name))


if __name__ == "__main__":
    main()
