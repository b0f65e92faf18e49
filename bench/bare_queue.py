"""The host's own ceiling for the renderer's kind of work: bare transcodes (the renderer's encoder
settings, its x264 and decoder thread counts) run as many at once as the renderer runs segment
encoders, on the cores this process may use, and the frames a second they get together.

Run it on one GPU's half of a host (`taskset -c 0-15`) and on the whole host: the ratio is what
a second half adds to plain transcoding, the most a second GPU's node can add to a CPU-bound
render queue on that host. `perf_h200x2.sh ceiling` alternates it with the renderer's steady
queue on one node and on two.

    taskset -c 0-15 python bench/bare_queue.py --copies 8 --name bare-queue-half.json
    python bench/bare_queue.py --copies 16 --name bare-queue-whole.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import time

from common import CpuSampler, bare_transcode_args, bench_workdir, commit, machine, save

from ecg_ray import probe
from ecg_ray.config import load_settings  # noqa: E402
from ecg_ray.media import ffmpeg  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, required=True, help="transcodes at once (the renderer's actors)")
    ap.add_argument("--seconds", type=float, default=20.0, help="of the input each copy transcodes")
    ap.add_argument("--threads", type=int, default=4, help="x264 threads a copy (ECG_ENCODER_THREADS)")
    ap.add_argument("--dec-threads", type=int, default=4, help="decoder threads a copy (ECG_DECODER_THREADS)")
    ap.add_argument("--quality", type=int, default=70, help="as scale_out.py")
    ap.add_argument("--workdir")
    ap.add_argument("--name", default=f"bare-queue-{dt.date.today()}.json")
    a = ap.parse_args()
    work, src = bench_workdir(a.workdir, "ecg-bare-queue-", 60, 1080, "30")
    info = probe(str(src))
    fps = float(info.fps)
    frames = int(round(a.seconds * fps))
    preset = load_settings().x264_preset
    cmds = []
    for i in range(a.copies):
        args = bare_transcode_args(src, work / f"bare{i}.mp4", fps, a.quality, preset, threads=a.threads)
        # the same decoder-thread cap as the renderer's segments, and the copy's length
        cmds.append([ffmpeg.ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
                     "-threads", str(a.dec_threads), "-t", f"{a.seconds}"] + args)
    with CpuSampler() as cpu:
        t0 = time.perf_counter()
        procs = [subprocess.Popen(c) for c in cmds]
        ends = []
        for p in procs:
            if p.wait() != 0:
                raise SystemExit(f"bare transcode failed: exit {p.returncode}")
            ends.append(time.perf_counter() - t0)
    wall = max(ends)
    out = {
        "kind": "bare-queue", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit(), "machine": machine(), "cores_used": len(os.sched_getaffinity(0)),
        "copies": a.copies, "frames_each": frames, "x264_threads": a.threads, "decoder_threads": a.dec_threads,
        "preset": preset, "wall_s": round(wall, 2), "first_done_s": round(min(ends), 2),
        "frames_per_s": round(a.copies * frames / wall, 1), "cpu": cpu.summary(),
    }
    for i in range(a.copies):
        (work / f"bare{i}.mp4").unlink(missing_ok=True)
    print(f"{a.copies} bare transcodes of {frames} frames on {out['cores_used']} cores: {wall:.1f} s, "
          f"{out['frames_per_s']} frames/s", flush=True)
    print(save(out, a.name))


if __name__ == "__main__":
    main()
