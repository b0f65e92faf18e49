"""Scale-out on one host with several GPUs, as several Ray nodes (``ray.cluster_utils.Cluster``:
one raylet per GPU, each with its share of the cores), two measurements:

  one:        one long input rendered across every node, against a bare FFmpeg transcode of
              the same input on the whole host (the floor);
  throughput: a queue of jobs (the same 60 s input, submitted at once) rendered by the cluster;
              run it once with --nodes 1 under `taskset` (one GPU and its cores) and once with
              --nodes 2 (both) to get the throughput ratio of two GPUs over one.
  steady:     a queue that never runs dry: --in-flight jobs render at all times (a new one is
              submitted as one ends, the first ones --stagger seconds apart), and after --warmup
              seconds the frames encoded in the next --window seconds are counted (the jobs'
              own progress reports). That is the rate a platform's steady stream of jobs gets;
              a burst of jobs submitted at once also pays its start and its tail, which weigh
              more the faster the cluster is.

    python bench/scale_out.py one --nodes 2 --cpus-per-node 16 --duration 600
    taskset -c 0-15 python bench/scale_out.py throughput --nodes 1 --cpus-per-node 16 --jobs 6
    python bench/scale_out.py throughput --nodes 2 --cpus-per-node 16 --jobs 6
    taskset -c 0-15 python bench/scale_out.py steady --nodes 1 --cpus-per-node 16 --in-flight 6

Without NVENC (the lent H100/H200 have none) the GPUs do no work here: what scales is the cores
that come with each GPU node. Results go to bench/results/scale-*.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import threading
import time

import ray  # noqa: E402
from common import (
    CpuSampler,
    ProcessCpu,
    bare_transcode_args,
    bench_workdir,
    commit,
    machine,
    make_scenario,
    save,
    timed,
)
from ray.cluster_utils import Cluster  # noqa: E402

from ecg_ray import RenderOptions, probe  # noqa: E402
from ecg_ray.config import load_settings  # noqa: E402
from ecg_ray.media import ffmpeg
from ecg_ray.rendering.gpu import gpu_info  # noqa: E402
from ecg_ray.rendering.renderer import Renderer  # noqa: E402


def _visible_gpus() -> list[str]:
    """The GPUs this process may use (CUDA_VISIBLE_DEVICES, else every one NVML lists)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip()]
    return [str(g["index"]) for g in gpu_info()]


def start_cluster(nodes: int, cpus: int, gpus: int, pin: bool = False) -> Cluster:
    """``nodes`` raylets on this host. Where the host has a GPU for each, node i is given GPUs
    [i*gpus, (i+1)*gpus) (CUDA_VISIBLE_DEVICES when its raylet starts), as separate machines
    would have: otherwise every raylet numbers its GPUs from 0 and all their actors share the
    first one (what NVDEC decoding, ECG_HWDEC=cuda, would notice)."""
    visible = _visible_gpus()
    saved = os.environ.get("CUDA_VISIBLE_DEVICES")

    def own_gpus(i: int) -> None:
        if gpus and len(visible) >= nodes * gpus:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(visible[i * gpus:(i + 1) * gpus])

    try:
        own_gpus(0)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus, "num_gpus": gpus})
        for i in range(1, nodes):
            own_gpus(i)
            cluster.add_node(num_cpus=cpus, num_gpus=gpus)
    finally:
        if saved is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved
    cluster.wait_for_nodes()
    if pin:
        pin_nodes(cluster, cpus)
    ray.init(address=cluster.address, log_to_driver=False)
    return cluster


def gpus_seen(gpus: int) -> list[str | None]:
    """What CUDA_VISIBLE_DEVICES a GPU task sees on each node (one entry per node)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_gpus=gpus, num_cpus=0)
    def seen() -> str | None:
        return os.environ.get("CUDA_VISIBLE_DEVICES")

    nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    return ray.get([seen.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote()
                    for n in nodes])


def pin_nodes(cluster: Cluster, cpus: int) -> None:
    """Node i's raylet (and so every worker it starts: actors, Chromium, FFmpeg) runs on cores
    [i*cpus, (i+1)*cpus), this driver and the head's other processes on node 0's: each Ray node
    then has its own cores, as separate machines would (unpinned, all processes of both nodes
    float over every core, which a single node pinned with taskset does not)."""
    import psutil

    nodes = [cluster.head_node, *cluster.worker_nodes]
    for i, node in enumerate(nodes):
        cores = list(range(i * cpus, (i + 1) * cpus))
        names = node.all_processes.keys() if i == 0 else ["raylet"]
        for name in names:
            for info in node.all_processes.get(name, []):
                try:
                    proc = psutil.Process(info.process.pid)
                    for p in [proc, *proc.children(recursive=True)]:
                        p.cpu_affinity(cores)
                except psutil.Error:
                    pass
    os.sched_setaffinity(0, range(cpus))


def steady(r: Renderer, a, src, scenario, opts: RenderOptions, work, frames: int) -> dict:
    """The steady mode (see the module's doc): frames encoded in the window, by every job."""
    lock = threading.Lock()
    done: dict[str, int] = {}            # job -> frames encoded (its latest progress report)
    finished: list[tuple[float, dict]] = []
    stop = threading.Event()
    cancel = threading.Event()
    seq = itertools.count()

    def worker(k: int) -> None:
        time.sleep(k * a.stagger)
        while not stop.is_set():
            with lock:
                jid = f"s{next(seq)}"

            def progress(p, jid=jid) -> None:
                if p.stage in ("rendering", "joining", "done"):
                    with lock:
                        done[jid] = max(done.get(jid, 0), p.frames_done)
            try:
                res = r.render(str(src), scenario, str(work / f"steady{k}.mp4"), opts, job_id=jid,
                               on_progress=progress, cancel=cancel)
            except Exception as exc:  # noqa: BLE001 - cancelled at the end of the window
                if not stop.is_set():
                    raise
                print(f"job {jid} stopped: {exc}", flush=True)
                return
            with lock:
                finished.append((time.perf_counter(), {"segments": res.segments, "seconds": res.seconds,
                                                       "busy": res.stats.get("segment_busy_s", 0.0),
                                                       "screenshots": res.stats.get("screenshots", 0.0)}))

    def snapshot() -> int:
        with lock:
            return sum(done.values())

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(a.in_flight)]
    for t in threads:
        t.start()
    time.sleep(a.warmup)
    f0, t0 = snapshot(), time.perf_counter()
    with CpuSampler() as cpu, ProcessCpu() as procs:
        time.sleep(a.window)
    f1, t1 = snapshot(), time.perf_counter()
    stop.set()
    cancel.set()
    for t in threads:
        t.join(timeout=120)
    in_window = [x for at, x in finished if t0 <= at <= t1]
    rate = (f1 - f0) / (t1 - t0)
    out = {
        "in_flight": a.in_flight, "stagger_s": a.stagger, "warmup_s": a.warmup, "window_s": round(t1 - t0, 2),
        "frames_in_window": f1 - f0, "frames_per_s": round(rate, 1),
        "jobs_per_minute": round(60 * rate / frames, 2),
        "jobs_finished_in_window": len(in_window),
        "segments_per_job": [x["segments"] for x in in_window],
        "segment_seconds_mean": round(sum(x["busy"] for x in in_window) / max(1, sum(x["segments"] for x in in_window)), 2),
        "job_seconds_mean": round(sum(x["seconds"] for x in in_window) / max(1, len(in_window)), 2),
        "screenshots_per_job": round(sum(x["screenshots"] for x in in_window) / max(1, len(in_window)), 1),
        "cpu": cpu.summary(),
        # CPU time of the window by process kind, and per frame encoded in it (ms)
        "cpu_s_by_process": procs.summary(),
    }
    n = max(1, f1 - f0)
    out["cpu_ms_per_frame"] = {k: round(1000 * v / n, 2) for k, v in out["cpu_s_by_process"].items() if v >= 0.5}
    print(f"steady, {a.in_flight} jobs in flight: {out['frames_per_s']} frames/s = {out['jobs_per_minute']} "
          f"jobs/min; segments per job {out['segments_per_job']}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("one", "throughput", "steady"))
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--cpus-per-node", type=int, default=16)
    ap.add_argument("--gpus-per-node", type=int, default=1)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", default="30")
    ap.add_argument("--cues-per-minute", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=6)
    ap.add_argument("--in-flight", type=int, default=6, help="steady: jobs rendering at all times")
    ap.add_argument("--stagger", type=float, default=2.0, help="steady: seconds between the first jobs")
    ap.add_argument("--warmup", type=float, default=15.0, help="steady: seconds before the window")
    ap.add_argument("--window", type=float, default=45.0, help="steady: seconds counted")
    ap.add_argument("--quality", type=int, default=70)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--pin", action="store_true", help="give each Ray node its own cores (see pin_nodes)")
    ap.add_argument("--name", default=None)
    a = ap.parse_args()

    settings = load_settings()
    work, src = bench_workdir(a.workdir, "ecg-scale-", a.duration, a.height, a.fps)
    info = probe(str(src))
    scenario = make_scenario(a.duration, max(1, round(a.cues_per_minute * a.duration / 60)))
    result: dict = {
        "what": f"scale-out, {a.mode}", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit(), "machine": machine(), "affinity_cores": len(os.sched_getaffinity(0)),
        "ray_nodes": a.nodes, "cpus_per_node": a.cpus_per_node, "gpus_per_node": a.gpus_per_node,
        "input": {"duration": info.duration, "frames": info.frame_count, "size": f"{info.width}x{info.height}",
                  "fps": float(info.fps), "content": "Big Buck Bunny clip looped"},
    }
    result["pinned"] = a.pin
    result["hwdec"] = settings.hwdec
    cluster = start_cluster(a.nodes, a.cpus_per_node, a.gpus_per_node, pin=a.pin)
    try:
        if a.gpus_per_node:
            result["cuda_visible_devices_by_node"] = gpus_seen(a.gpus_per_node)
        t0 = time.perf_counter()
        r = Renderer()
        r.ensure_actors(r.slots())
        result["cold_start_s"] = round(time.perf_counter() - t0, 2)
        result["actors"] = len(r.actors)
        opts = RenderOptions(quality=a.quality)
        if a.mode == "one":
            bare = work / "bare.mp4"
            t_bare, _ = timed(ffmpeg.run, bare_transcode_args(src, bare, float(info.fps), a.quality,
                                                              settings.x264_preset), what="bare transcode")
            res = r.render(str(src), scenario, str(work / "ours.mp4"), opts)
            result["bare_transcode_s"] = round(t_bare, 2)
            result["renderer_s"] = round(res.seconds, 2)
            result["ratio_vs_bare"] = round(res.seconds / t_bare, 3)
            result["segments"] = res.segments
            result["nodes_used"] = len(set(res.nodes))
            result["stats"] = res.stats
            print(f"bare {t_bare:.1f}s; renderer {res.seconds:.1f}s on {len(set(res.nodes))} nodes "
                  f"({res.seconds / t_bare:.2f}x)", flush=True)
        else:
            # Warm-up job so that every actor has its browser and page loaded, as in the service.
            r.render(str(src), scenario, str(work / "warm.mp4"), opts)
        if a.mode == "steady":
            result.update(steady(r, a, src, scenario, opts, work, info.frame_count))
        elif a.mode == "throughput":
            times: dict[int, float] = {}
            segs: dict[int, list] = {}
            stats: dict[int, dict] = {}

            def job(i: int) -> None:
                res = r.render(str(src), scenario, str(work / f"job{i}.mp4"), opts, job_id=f"q{i}")
                times[i] = res.seconds
                segs[i] = res.nodes
                stats[i] = res.stats

            t0 = time.perf_counter()
            threads = [threading.Thread(target=job, args=(i,)) for i in range(a.jobs)]
            with CpuSampler() as cpu:
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            wall = time.perf_counter() - t0
            result["cpu"] = cpu.summary()
            result["jobs"] = a.jobs
            result["wall_s"] = round(wall, 2)
            result["jobs_per_minute"] = round(60 * a.jobs / wall, 2)
            result["job_seconds"] = [round(times[i], 2) for i in sorted(times)]
            # how busy the actors were: segment time summed over the jobs, against actors x wall
            busy = sum(stats[i].get("segment_busy_s", 0.0) for i in stats)
            result["actor_busy_fraction"] = round(busy / (len(r.actors) * wall), 3)
            result["segment_seconds_mean"] = round(busy / max(1, sum(len(v) for v in segs.values())), 2)
            # segments per job on each node (a job spread over both nodes, or kept on one)
            names = sorted({n for v in segs.values() for n in v})
            result["segments_per_node"] = [[v.count(n) for n in names] for _, v in sorted(segs.items())]
            print(f"{a.jobs} jobs in {wall:.1f}s: {60 * a.jobs / wall:.2f} jobs/min on {a.nodes} node(s)", flush=True)
        r.close()
    finally:
        ray.shutdown()
        cluster.shutdown()
    name = a.name or f"scale-{a.mode}-{a.nodes}node-{a.height}p-{int(a.duration)}s-{dt.date.today().isoformat()}.json"
    print("saved", save(result, name))


if __name__ == "__main__":
    main()
