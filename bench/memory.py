"""Peak memory (PSS) of a segment actor with its browser and FFmpeg children, for inputs of several
lengths (it must stay flat: frames stream through, nothing is held per frame).

    python bench/memory.py --durations 10,60 --height 720 --segments 2 [--karaoke]

Samples every 0.2 s the proportional set size (PSS) of each ``ray::SegmentRenderer`` process plus all its
children (Chromium's processes, the decoder and encoder); writes bench/results/memory-*.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import threading
import time
from pathlib import Path

import psutil  # noqa: E402
from common import commit, machine, make_input, make_scenario, save

from ecg_ray import RenderOptions  # noqa: E402
from ecg_ray.rendering.renderer import Renderer  # noqa: E402


def _kind(q: psutil.Process) -> str:
    name = q.name().lower()
    if "ffmpeg" in name:
        return "ffmpeg"
    if "chrom" in name or "headless" in name:
        return "chromium"
    if name.startswith("node"):  # Playwright's driver (it names itself node-MainThread)
        return "playwright"
    return "other"


def actor_trees() -> dict[int, dict[str, int]]:
    """Memory in bytes of each segment actor with everything under it, by actor pid and by kind
    of process (the actor's Python, Chromium, FFmpeg, Playwright's driver): PSS (shared pages
    divided among the processes sharing them; a plain RSS sum would count Chromium's shared
    libraries and shared memory once per process)."""
    out: dict[int, dict[str, int]] = {}
    for p in psutil.process_iter(["cmdline"]):
        if "ray::SegmentRenderer" not in " ".join(p.info["cmdline"] or []):
            continue
        by: dict[str, int] = {}
        for q in [p, *p.children(recursive=True)]:
            try:
                k = "actor" if q.pid == p.pid else _kind(q)
                mem = q.memory_full_info()
                by[k] = by.get(k, 0) + mem.pss
                if k == "actor":  # the part no other process shares (Ray's object store pages excluded)
                    by["actor_private"] = mem.uss
            except psutil.Error:
                pass
        out[p.pid] = by
    return out


def _mb(by: dict[str, int]) -> dict[str, int]:
    return {k: round(v / 2**20) for k, v in sorted(by.items())}


def _total(by: dict[str, int]) -> int:
    return sum(v for k, v in by.items() if k != "actor_private")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--durations", default="10,60")
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", default="25")
    ap.add_argument("--segments", type=int, default=2)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--name", default=None)
    ap.add_argument("--repeat", type=int, default=1,
                    help="render each duration this many times on the same warm actors (idle memory between jobs must not creep)")
    ap.add_argument("--karaoke", action="store_true",
                    help="every cue coloured letter by letter all its life: a capture on nearly every frame")
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="ecg-mem-"))
    work.mkdir(parents=True, exist_ok=True)
    r = Renderer()
    r.ensure_actors(a.segments)
    runs = []
    for d in (float(x) for x in a.durations.split(",") for _ in range(a.repeat)):
        src = work / f"input_{a.height}p{a.fps}_{int(d)}s.mp4"
        make_input(src, d, a.height, a.fps)
        peak: dict[int, int] = {}
        at_peak: dict[int, dict[str, int]] = {}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                for pid, by in actor_trees().items():
                    if _total(by) > peak.get(pid, 0):
                        peak[pid] = _total(by)
                        at_peak[pid] = by
                time.sleep(0.2)

        idle = actor_trees()
        t = threading.Thread(target=sample, daemon=True)
        t.start()
        res = r.render(str(src), make_scenario(d, max(1, int(d / 5)), karaoke=a.karaoke), str(work / "out.mp4"),
                       RenderOptions(segments=a.segments))
        stop.set()
        t.join()
        runs.append({"duration_s": d, "job": len(runs) + 1, "frames": res.frames, "segments": res.segments,
                     "idle_mb_per_actor": {str(k): round(_total(v) / 2**20) for k, v in idle.items()},
                     "idle_mb_by_process": {str(k): _mb(v) for k, v in idle.items()},
                     "peak_mb_per_actor": {str(k): round(v / 2**20) for k, v in peak.items()},
                     "peak_mb_max": round(max(peak.values()) / 2**20) if peak else None,
                     "peak_mb_by_process": {str(k): _mb(v) for k, v in at_peak.items()}})
        top = max(peak, key=peak.get) if peak else None
        print(f"{d:.0f}s (job {len(runs)}): idle before it {max(runs[-1]['idle_mb_per_actor'].values(), default=0)} MB,"
              f" peak PSS per actor (with browser and FFmpeg) {runs[-1]['peak_mb_max']} MB"
              + (f" {_mb(at_peak[top])}" if top else ""), flush=True)
    after = {str(k): round(_total(v) / 2**20) for k, v in actor_trees().items()}
    print(f"idle after the last job: {max(after.values(), default=0)} MB", flush=True)
    r.close()
    result = {"what": "peak PSS of a segment actor with its Chromium and FFmpeg children",
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "commit": commit(),
              "machine": machine(), "height": a.height, "fps": a.fps, "karaoke": a.karaoke, "runs": runs,
              "idle_mb_per_actor_after_last": after}
    name = a.name or f"memory-{result['machine']['cores']}core-{a.height}p-{dt.date.today().isoformat()}.json"
    print("saved", save(result, name))


if __name__ == "__main__":
    main()
