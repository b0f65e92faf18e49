"""Re-render after an edit (issue 28 part 2): a long video with many cues is rendered once (its
segments go to the segment cache), then one cue's text is changed and the job rendered again
from the cache, alternated with the full render of the same edited scenario without the cache
(and, with --bare, a bare FFmpeg transcode of the input). Warm: one Renderer and its actors
serve every run; the input is made before. Records whether the re-render is byte for byte the
full render.

    python bench/rerender.py --duration 600 --height 1080 --fps 30 --cues 150 --rounds 2 --bare
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import shutil
import statistics
import time
from fractions import Fraction
from pathlib import Path

from common import bare_transcode_args, bench_workdir, make_scenario, result_header, save, timed

from ecg_ray.config import load_settings
from ecg_ray.media import ffmpeg
from ecg_ray.rendering.models import RenderOptions
from ecg_ray.rendering.renderer import Renderer
from ecg_ray.service.segcache import LocalSegmentCache


def _sha(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", default="30")
    ap.add_argument("--cues", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--bare", action="store_true", help="a bare transcode in each round too")
    ap.add_argument("--name", default=None)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()

    work, src = bench_workdir(args.workdir, "ecg-rerender-", args.duration, args.height, args.fps)
    settings = load_settings()
    scenario = make_scenario(args.duration, args.cues)
    cache_dir = work / "segment-cache"
    shutil.rmtree(cache_dir, ignore_errors=True)
    cache = LocalSegmentCache(str(cache_dir), 64 << 30, 86400)
    r = Renderer(settings=settings)
    r.ensure_actors(r.slots())
    opts = RenderOptions()
    name = args.name or f"rerender-{int(args.duration)}s-{args.height}p{args.fps}-{args.cues}cues.json"

    def record() -> None:  # after every round: a run cut short keeps what it measured
        med = {k: statistics.median(x["wall_s"] for x in v) for k, v in runs.items() if v}
        result = result_header("re-render after editing one cue's text, from the segment cache, against the full render")
        result.update(input={"duration_s": args.duration, "height": args.height, "fps": args.fps, "cues": args.cues},
                      warm=True, first_render_s=round(first_s, 2), segments=first.segments, runs=runs,
                      medians_s={k: round(v, 2) for k, v in med.items()},
                      rerender_over_full=round(med["rerender"] / med["full"], 3))
        if "bare" in med:
            result["full_over_bare"] = round(med["full"] / med["bare"], 3)
        print(f"saved {save(result, name)}", flush=True)

    runs: dict[str, list[dict]] = {"rerender": [], "full": [], "bare": []}
    try:
        first_s, first = timed(r.render, str(src), scenario, str(work / "first.mp4"), opts, cache=cache)
        print(f"first render (fills the cache): {first_s:.1f} s, {first.segments} segments", flush=True)
        for rnd in range(args.rounds):
            edited = copy.deepcopy(scenario)
            i = args.cues // 2 + rnd * 7  # another cue each round: each re-render is a fresh edit
            node = edited["cues"][i]["root"]["children"][0]
            node["text"] = f"고친 자막 {rnd} · edited line {rnd}"
            inc_s, inc = timed(r.render, str(src), edited, str(work / "inc.mp4"), opts, cache=cache)
            full_s, full = timed(r.render, str(src), edited, str(work / "full.mp4"), opts)
            same = _sha(work / "inc.mp4") == _sha(work / "full.mp4")
            runs["rerender"].append({"wall_s": round(inc_s, 2), "reused": int(inc.stats["reused_segments"]),
                                     "segments": inc.segments, "cache_lookup_s": round(inc.stats["cache_lookup_s"], 2),
                                     "identical_to_full": same, "edited_cue": i})
            runs["full"].append({"wall_s": round(full_s, 2)})
            print(f"round {rnd + 1}: re-render {inc_s:.1f} s ({int(inc.stats['reused_segments'])}/{inc.segments} "
                  f"reused, identical: {same}), full {full_s:.1f} s", flush=True)
            if args.bare:
                t0 = time.perf_counter()
                ffmpeg.run(bare_transcode_args(src, work / "bare.mp4", float(Fraction(args.fps)), 70,
                                               settings.x264_preset), what="bare transcode")
                bare_s = time.perf_counter() - t0
                runs["bare"].append({"wall_s": round(bare_s, 2)})
                print(f"round {rnd + 1}: bare {bare_s:.1f} s", flush=True)
            record()
    finally:
        r.close()



if __name__ == "__main__":
    main()
