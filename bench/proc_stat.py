"""Where the machine's CPU time went while a command ran, from the kernel's own counters
(/proc/stat): user, system, idle, iowait, steal (time the hypervisor gave this VM's vCPUs to
someone else) and the rest, as shares of the run, overall and per second.

A busy-cores figure from psutil cannot tell a core that waits on I/O from one the host took
away; this can.

    python bench/proc_stat.py --name proc-stat-X.json -- python bench/scale_out.py steady ...
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import threading
import time

from common import commit, machine, save

FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def read() -> list[int]:
    with open("/proc/stat") as fh:
        parts = fh.readline().split()
    return [int(x) for x in parts[1:1 + len(FIELDS)]]


def shares(a: list[int], b: list[int]) -> dict[str, float]:
    d = [y - x for x, y in zip(a, b)]
    total = max(1, sum(d))
    return {k: round(100.0 * v / total, 2) for k, v in zip(FIELDS, d)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True)
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- the command to run")
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    timeline: list[dict[str, float]] = []
    stop = threading.Event()

    def sample() -> None:
        prev = read()
        while not stop.wait(1.0):
            cur = read()
            timeline.append(shares(prev, cur))
            prev = cur

    t = threading.Thread(target=sample, daemon=True)
    first, t0 = read(), time.perf_counter()
    t.start()
    rc = subprocess.call(cmd)
    stop.set()
    t.join()
    overall = shares(first, read())
    out = {"kind": "proc-stat", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "commit": commit(), "machine": machine(), "command": cmd, "returncode": rc,
           "wall_s": round(time.perf_counter() - t0, 2), "overall_pct": overall, "per_second_pct": timeline}
    print("proc_stat:", " ".join(f"{k} {v}%" for k, v in overall.items() if v), flush=True)
    print(save(out, a.name))
    raise SystemExit(rc)


if __name__ == "__main__":
    main()
