"""What a machine's cores really are, measured: the two-GPU host runs one node's queue alone
noticeably faster than it runs it beside a second node, and its vCPUs are a VM's (Firecracker),
so the topology the guest reports need not be the host's.

Three measurements, each with the same single-threaded load (x264 veryfast on a generated
720p picture, one thread everywhere, pinned to one core):

  solo:     the load alone on core 0 (the reference time);
  pairs:    the load on core 0 and on core k at once, for every k: a pair that share a physical
            core (hyperthreads) run far slower than the solo time; independent cores do not;
  scaling:  the load on cores 0..m-1 at once, for several m: how the time of one copy grows as
            more of the machine works (shared caches, memory, clocks), the same load the
            renderer's encoders are made of.

    python bench/cpu_topology.py --name cpu-topology-h200x2-DATE.json

Results go to bench/results/ (with what sysfs and lscpu report, for comparison).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import time
from pathlib import Path

from common import commit, machine, save

from ecg_ray.media import ffmpeg  # noqa: E402


def load_cmd(frames: int) -> list[str]:
    return [ffmpeg.ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-threads", "1",
            "-filter_threads", "1", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
            "-frames:v", str(frames), "-c:v", "libx264", "-preset", "veryfast", "-threads", "1", "-f", "null", "-"]


def run_on(cores: list[int], frames: int) -> list[float]:
    """The load once on each core at once: each copy's wall seconds."""
    procs = []
    for c in cores:
        t0 = time.perf_counter()
        p = subprocess.Popen(load_cmd(frames), preexec_fn=lambda c=c: os.sched_setaffinity(0, {c}))
        procs.append((p, t0))
    out = []
    for p, t0 in procs:
        if p.wait() != 0:
            raise RuntimeError(f"load failed: exit {p.returncode}")
        out.append(time.perf_counter() - t0)
    return out


def reported_topology() -> dict:
    cpus = sorted(os.sched_getaffinity(0))
    sib = {}
    for c in cpus:
        p = Path(f"/sys/devices/system/cpu/cpu{c}/topology")
        try:
            sib[c] = {"siblings": (p / "thread_siblings_list").read_text().strip(),
                      "core_id": (p / "core_id").read_text().strip(),
                      "package": (p / "physical_package_id").read_text().strip()}
        except OSError:
            pass
    numa = {}
    for d in sorted(Path("/sys/devices/system/node").glob("node[0-9]*")):
        try:
            numa[d.name] = (d / "cpulist").read_text().strip()
        except OSError:
            pass
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        lscpu = ""
    return {"cpus": cpus, "sysfs": sib, "numa": numa, "lscpu": lscpu.splitlines()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=120, help="frames of the load (about 1-2 s on one core)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--name", default=f"cpu-topology-{dt.date.today()}.json")
    a = ap.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    base = cpus[0]
    run_on([base], a.frames)  # warm the binary and the page cache
    solo = [run_on([base], a.frames)[0] for _ in range(a.reps)]
    t_solo = statistics.median(solo)
    print(f"solo on {base}: {t_solo:.2f} s", flush=True)
    pairs = {}
    for k in cpus[1:]:
        ts = [run_on([base, k], a.frames) for _ in range(max(1, a.reps - 1))]
        pairs[k] = round(statistics.median(max(t) for t in ts) / t_solo, 3)
        print(f"pair {base}+{k}: {pairs[k]:.2f}x solo", flush=True)
    scaling = {}
    n = len(cpus)
    for m in sorted({1, 2, n // 4, n // 2, 3 * n // 4, n} - {0}):
        per = [statistics.mean(run_on(cpus[:m], a.frames)) for _ in range(a.reps)]
        scaling[m] = round(statistics.median(per) / t_solo, 3)
        print(f"{m} at once: {scaling[m]:.2f}x solo a copy, {m / scaling[m]:.1f} cores' worth", flush=True)
    slow = sorted(k for k, r in pairs.items() if r > 1.3)
    out = {
        "kind": "cpu-topology", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit(), "machine": machine(), "frames": a.frames, "reps": a.reps,
        "solo_s": [round(t, 3) for t in solo], "pair_slowdown": pairs, "pairs_sharing_a_core": slow,
        "copies_at_once_slowdown": scaling,
        "throughput_ratio_all_vs_half": round((n / scaling[n]) / ((n // 2) / scaling[n // 2]), 3) if n >= 2 else None,
        "reported": reported_topology(),
    }
    print(f"cores that slow core {base} down when run beside it: {slow or 'none'}")
    print(f"all {n} cores against half: {out['throughput_ratio_all_vs_half']}x the throughput")
    print(save(out, a.name))


if __name__ == "__main__":
    main()
