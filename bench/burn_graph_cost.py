"""What each part of a segment's FFmpeg command costs, without Python or a browser: one segment
(the second half of the input) transcoded in steps from a plain transcode to the burn graph
(`ecg_ray/media/burn.py`), each step adding one thing. The overlay is a transparent band from lavfi,
enabled on most frames as captions are. Alternated rounds; CPU time per step (the median).

    python bench/burn_graph_cost.py --height 720 --fps 25 --rounds 3
"""

from __future__ import annotations

import argparse
import datetime as dt
from fractions import Fraction
from pathlib import Path

from common import ChildCpu, alternated_rounds, bench_workdir, result_header, save, transcode_args

from ecg_ray.media import ffmpeg
from ecg_ray.media.encode import quality_to_crf


def steps(src: Path, height: int, fps: Fraction, frames: int, crf: int, preset: str, threads: int) -> dict:
    width = height * 16 // 9 // 2 * 2
    gop = str(int(round(float(fps) * 2)))
    start = f"{frames / float(fps) + 0.5 / float(fps):.6f}"  # the second segment: seek as burn.py does
    head = ["-loglevel", "error", "-ss", start, "-i", str(src)]
    plain = ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-g", gop, "-pix_fmt", "yuv420p",
             "-threads", str(threads)]
    ours = ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-g", gop, "-keyint_min", gop,
            "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-profile:v", "high", "-colorspace", "bt709",
            "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv", "-threads", str(threads)]
    main = f"setparams=colorspace=bt709:range=tv,format=yuv420p,settb=expr={fps.denominator}/{fps.numerator}," \
           f"setpts=N,fps={fps.numerator}/{fps.denominator}"
    band = (height * 5 // 16) // 2 * 2
    lavfi = ["-f", "lavfi", "-i", f"color=c=black@0.0:s={width}x{band}:r={fps.numerator}/{fps.denominator},"
                                  "format=yuva420p"]
    # Captions on 88% of the frames, in runs, as the benchmark's cues are.
    span = int(float(fps) * 5)
    enable = "+".join(f"between(n,{a},{a + span * 88 // 100})" for a in range(0, frames, span))

    def graph(extra: str) -> list[str]:
        return ["-filter_complex", f"[0:v:0]{main}[m];[1:v:0]setparams=colorspace=bt709:range=tv[o];"
                                   f"[m][o]overlay=x=0:y=main_h-overlay_h:format=yuv420:alpha=straight:"
                                   f"eof_action=repeat{extra}[v]", "-map", "[v]"]

    n = ["-frames:v", str(frames), "-an"]
    gop_opts = ["-keyint_min", gop, "-sc_threshold", "0", "-profile:v", "high"]
    tags = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]
    tb = f"settb=expr={fps.denominator}/{fps.numerator},setpts=N"
    return {
        "1 plain transcode": head + n + plain,
        "2 + fixed GOP and profile (what the bare transcode adds)": head + n + plain + gop_opts,
        "3 + colour tags on the output": head + n + plain + gop_opts + tags,
        "4 + setparams (the source's colours said)": head + n + ["-vf", "setparams=colorspace=bt709:range=tv"]
        + plain + gop_opts + tags,
        "5 + format=yuv420p": head + n + ["-vf", "setparams=colorspace=bt709:range=tv,format=yuv420p"]
        + plain + gop_opts + tags,
        "6 + settb, setpts=N": head + n + ["-vf", f"setparams=colorspace=bt709:range=tv,format=yuv420p,{tb}"]
        + plain + gop_opts + tags,
        "7 + fps (the whole main chain)": head + n + ["-vf", main] + ours,
        "8 + the overlay band, enabled on 88% of frames": head + lavfi + graph(f":enable='{enable}'") + n + ours,
        "9 + the overlay band on every frame": head + lavfi + graph("") + n + ours,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    transcode_args(ap)
    ap.add_argument("--segments", type=int, default=2, help="the segment is 1/N of the input")
    ap.add_argument("--threads", type=int, default=4)
    a = ap.parse_args()
    work, src = bench_workdir(a.workdir, "ecg-graph-", a.duration, a.height, a.fps)
    fps = Fraction(a.fps)
    frames = int(a.duration * float(fps)) // a.segments
    variants = steps(src, a.height, fps, frames, quality_to_crf(a.quality), a.preset, a.threads)
    def one(k: str) -> tuple[float, float]:
        with ChildCpu() as m:
            ffmpeg.run(variants[k] + ["-f", "mp4", "-y", str(work / "out.mp4")], what=k)
        return m.wall, m.cpu

    steps_run = alternated_rounds(a.rounds, list(variants), one)
    result = {
        **result_header("a segment's FFmpeg command, step by step"),
        "input": f"{a.height}p{a.fps}, {a.duration:g} s; the segment: frames {frames}-{2 * frames}",
        "threads": a.threads,
        "steps": steps_run,
    }
    name = a.name or f"burn-graph-{a.height}p-{dt.date.today().isoformat()}.json"
    print("saved", save(result, name))


if __name__ == "__main__":
    main()
