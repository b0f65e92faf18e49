"""Peak memory (PSS) of a segment actor with its browser and FFmpeg children, for inputs of several
lengths (it must stay flat: frames stream through, nothing is held per frame).

    python bench/memory.py --durations 10,60 --height 720 --segments 2

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

from common import commit, machine, make_input, make_scenario, save

import psutil  # noqa: E402

from ecg_ray import RenderOptions  # noqa: E402
from ecg_ray.pipeline import Renderer  # noqa: E402


def actor_trees() -> dict[int, int]:
    """Memory in bytes of each segment actor with everything under it, by actor pid: PSS
    (shared pages divided among the processes sharing them; a plain RSS sum would count
    Chromium's shared libraries and shared memory once per process)."""
    out: dict[int, int] = {}
    for p in psutil.process_iter(["cmdline"]):
        if "ray::SegmentRenderer" not in " ".join(p.info["cmdline"] or []):
            continue
        try:
            procs = [p, *p.children(recursive=True)]
            out[p.pid] = sum(q.memory_full_info().pss for q in procs if q.is_running())
        except psutil.Error:
            pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--durations", default="10,60")
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", default="25")
    ap.add_argument("--segments", type=int, default=2)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--name", default=None)
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="ecg-mem-"))
    work.mkdir(parents=True, exist_ok=True)
    r = Renderer()
    r.ensure_actors(a.segments)
    runs = []
    for d in (float(x) for x in a.durations.split(",")):
        src = work / f"input_{a.height}p{a.fps}_{int(d)}s.mp4"
        make_input(src, d, a.height, a.fps)
        peak: dict[int, int] = {}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                for pid, rss in actor_trees().items():
                    peak[pid] = max(peak.get(pid, 0), rss)
                time.sleep(0.2)

        idle = actor_trees()
        t = threading.Thread(target=sample, daemon=True)
        t.start()
        res = r.render(str(src), make_scenario(d, max(1, int(d / 5))), str(work / "out.mp4"),
                       RenderOptions(segments=a.segments))
        stop.set()
        t.join()
        runs.append({"duration_s": d, "frames": res.frames, "segments": res.segments,
                     "idle_mb_per_actor": {str(k): round(v / 2**20) for k, v in idle.items()},
                     "peak_mb_per_actor": {str(k): round(v / 2**20) for k, v in peak.items()},
                     "peak_mb_max": round(max(peak.values()) / 2**20) if peak else None})
        print(f"{d:.0f}s: peak PSS per actor (with browser and FFmpeg) {runs[-1]['peak_mb_max']} MB", flush=True)
    r.close()
    result = {"what": "peak PSS of a segment actor with its Chromium and FFmpeg children",
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "commit": commit(),
              "machine": machine(), "height": a.height, "fps": a.fps, "runs": runs}
    name = a.name or f"memory-{result['machine']['cores']}core-{a.height}p-{dt.date.today().isoformat()}.json"
    print("saved", save(result, name))


if __name__ == "__main__":
    main()
