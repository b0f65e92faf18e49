"""Benchmark inputs: the vendored real clip looped and scaled, and caption scenarios."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ecg_ray.media import ffmpeg  # noqa: E402

CLIP = ROOT / "ecg_ray" / "demo" / "bbb_720p25_5s.mp4"

KO = ["안녕하세요, 반갑습니다", "오늘은 토끼 이야기를 할게요", "숲속에 큰 토끼가 살았어요", "나비가 날아왔어요",
      "토끼는 기지개를 켰어요", "정말 아름다운 아침이에요", "친구들이 놀러 왔어요", "모두 함께 웃었어요"]
EN = ["Hello and welcome", "A story about a rabbit", "A big rabbit lived in the forest", "A butterfly flew by",
      "The rabbit stretched", "What a beautiful morning", "Friends came to play", "Everyone laughed together"]
EFFECTS = ["fadein", "slideup", "scalepop", "typewriter"]


def make_input(path: Path, duration: float, height: int, fps: str) -> None:
    """The real clip, looped to ``duration`` seconds, scaled to ``height``p at ``fps``."""
    if path.exists():
        return
    width = height * 16 // 9 // 2 * 2
    loops = int(duration // 5) + 1
    ffmpeg.run([
        "-stream_loop", str(loops), "-i", str(CLIP), "-t", f"{duration}",
        "-vf", f"scale={width}:{height}:flags=bicubic,fps={fps}",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", "60",
        "-c:a", "aac", "-b:a", "160k", "-movflags", "+faststart", "-y", str(path),
    ], what="bench input")


def make_scenario(duration: float, cues: int, karaoke: bool = False) -> dict:
    """``cues`` cues spread over the video, each with an entrance and an exit effect.

    karaoke: every cue is coloured letter by letter over its whole life (every frame animated).
    """
    span = duration / cues
    out = []
    for i in range(cues):
        start = round(i * span + 0.2, 3)
        end = round(min(duration, (i + 1) * span - 0.1), 3)
        text = f"{KO[i % len(KO)]} · {EN[i % len(EN)]}"
        if karaoke:
            # Karaoke colouring over the cue's whole life: a letter is always mid-blend, so the
            # drawing changes on every frame (typewriter changed only when a letter appeared).
            chain = [{"name": "cwi-color", "timeOffset": ["0%", "0%"], "params": {"color": "#FFD400"}}]
        else:
            # Entrance over the first 25% (MotionText's second bound counts from the end), and an
            # exit effect (a different plugin: one name twice on a node shares its state) at the end.
            chain = [{"name": EFFECTS[i % len(EFFECTS)], "timeOffset": ["0%", "-75%"]},
                     {"name": "pulse", "timeOffset": ["88%", "0%"]}]
        out.append({"id": f"c{i}", "track": "captions", "root": {"id": f"g{i}", "eType": "group", "children": [
            {"id": f"t{i}", "eType": "text", "text": text, "displayTime": [start, end],
             "layout": {"position": {"x": 0.5, "y": 0.9}, "anchor": "bc"}, "pluginChain": chain}]}})
    return {
        "version": "2.0", "timebase": {"unit": "seconds"}, "stage": {"baseAspect": "16:9"},
        "tracks": [{"id": "captions", "type": "subtitle", "layer": 1, "defaultStyle": {
            "fontFamily": "'Noto Sans CJK KR', sans-serif", "fontWeight": 700, "fontSizeRel": 0.06,
            "color": "#ffffff", "stroke": {"widthRel": 0.0018, "color": "#000000"},
            "textShadow": "0 0 3px rgba(0,0,0,0.9)", "whiteSpace": "nowrap"}}],
        "cues": out,
    }


def bare_transcode_args(src: Path, dst: Path, fps: float, quality: int, preset: str, threads: int = 0) -> list[str]:
    """A bare FFmpeg transcode with exactly the encoder settings the renderer uses."""
    from ecg_ray.media.encode import quality_to_crf

    gop = max(1, int(round(fps * 2)))
    args = ["-i", str(src), "-map", "0:v:0", "-map", "0:a:0?", "-c:v", "libx264", "-preset", preset,
            "-crf", str(quality_to_crf(quality)), "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
            "-pix_fmt", "yuv420p", "-profile:v", "high"]
    if threads:
        args += ["-threads", str(threads)]
    return args + ["-c:a", "copy", "-movflags", "+faststart", "-y", str(dst)]


class CpuSampler:
    """How busy the machine's cores are while a run goes on (psutil, every ``every`` seconds):
    tells a run that keeps every core busy from one that waits on something. ``halves`` splits
    the cores in two groups (the two GPUs' halves of a 2-GPU host)."""

    def __init__(self, every: float = 0.5) -> None:
        import threading

        import psutil

        self._psutil, self.every = psutil, every
        self.samples: list[list[float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self._psutil.cpu_percent(percpu=True)
        while not self._stop.wait(self.every):
            self.samples.append(self._psutil.cpu_percent(percpu=True))

    def __enter__(self) -> "CpuSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        if not self.samples:
            return {}
        cores = len(self.samples[0])
        per = [sum(s) / cores for s in self.samples]
        out = {"cores": cores, "samples": len(per), "every_s": self.every,
               "busy_mean_pct": round(sum(per) / len(per), 1),
               "time_under_80pct": round(sum(1 for p in per if p < 80) / len(per), 3),
               "timeline_pct": [round(p) for p in per]}
        if cores >= 4:
            h = cores // 2
            out["halves_busy_mean_pct"] = [round(sum(sum(s[:h]) / h for s in self.samples) / len(per), 1),
                                           round(sum(sum(s[h:]) / (cores - h) for s in self.samples) / len(per), 1)]
        return out


def chromium_kind(name: str, cmdline: list[str]) -> str | None:
    """"playwright" for Playwright's driver, Chromium's process type ("browser", "renderer",
    "gpu-process", "utility", ...) for a Chromium process, None for anything else."""
    if name.startswith("node") or "playwright" in " ".join(cmdline[:3]):
        return "playwright"
    if "chrom" not in name and "headless" not in name:
        return None
    return next((a[len("--type="):] for a in cmdline if a.startswith("--type=")), "browser")


class ProcessCpu:
    """CPU time spent during a run by every process on the machine, summed by kind (FFmpeg,
    Chromium's browser / renderer / GPU process, Playwright, Ray's actors, raylet, GCS, its
    other services, this driver): where a run's CPU goes, beyond how busy the cores were.
    Sampled every ``every`` seconds, so a process that lives less than that is missed."""

    def __init__(self, every: float = 1.0) -> None:
        import threading

        import psutil

        self._psutil, self.every = psutil, every
        self._first: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _kind(self, p) -> str:
        name = p.info["name"] or ""
        cmd = p.info["cmdline"] or []
        head = " ".join(cmd[:3])
        if p.pid == os.getpid():
            return "driver"
        if "ffmpeg" in name:
            return "ffmpeg"
        kind = chromium_kind(name, cmd)
        if kind is not None:
            return kind if kind == "playwright" else f"chromium-{kind}"
        if name.startswith("ray::") or head.startswith("ray::"):
            return "ray-" + (name if name.startswith("ray::") else cmd[0])[5:].split()[0]  # the actor's class
        if "raylet" in name:
            return "raylet"
        if "gcs_server" in name:
            return "ray-gcs"
        if "ray" in head or "dashboard" in head:
            script = next((os.path.basename(a) for a in cmd if a.endswith(".py")), "?")
            return f"ray-services ({script})"
        return "other"

    def _sample(self, first: bool) -> None:
        for p in self._psutil.process_iter(["name", "cmdline", "cpu_times"]):
            t = p.info["cpu_times"]
            if t is None:
                continue
            used = t.user + t.system
            if first:
                self._first[p.pid] = used
            self._last[p.pid] = (self._last.get(p.pid, (None,))[0] or self._kind(p), used)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample(False)

    def __enter__(self) -> "ProcessCpu":
        self._sample(True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(False)

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, (kind, used) in self._last.items():
            out[kind] = out.get(kind, 0.0) + used - self._first.get(pid, 0.0)
        out = {k: round(v, 2) for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v >= 0.01}
        out["total"] = round(sum(out.values()), 2)
        return out


class ChildCpu:
    """Wall time and the CPU time of the child processes that ended meanwhile (FFmpegs run and
    waited for inside the block): ``with ChildCpu() as m: ...`` then ``m.wall``, ``m.cpu``."""

    def __enter__(self) -> "ChildCpu":
        import resource

        self._before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        import resource

        self.wall = time.perf_counter() - self._t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu = (after.ru_utime + after.ru_stime) - (self._before.ru_utime + self._before.ru_stime)


def run_parallel(commands: list[list[str]]) -> tuple[float, float]:
    """Start FFmpeg with each argument list at once and wait for all: (wall, CPU of them all)."""
    import subprocess

    from ecg_ray.media import ffmpeg

    with ChildCpu() as m:
        procs = [ffmpeg.popen(args, stdin=subprocess.DEVNULL) for args in commands]
        failed = [p.wait() for p in procs]
    if any(failed):
        raise RuntimeError("an FFmpeg run at once with others failed")
    return m.wall, m.cpu


def result_header(what: str) -> dict:
    """The fields every recorded result starts with: what it measures, when, at which commit, where."""
    import datetime as dt

    return {"what": what, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "commit": commit(), "machine": machine()}


def transcode_args(ap) -> None:
    """The options of the FFmpeg-only benchmarks: the input (made from the real clip), the
    encoder settings, the alternated rounds, where to work and the result's name."""
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", default="25")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quality", type=int, default=70)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--name", default=None)
    ap.add_argument("--workdir", default=None)


def alternated_rounds(rounds: int, keys: list, one) -> dict:
    """``one(key) -> (wall, cpu)`` for every key in turn, ``rounds`` times over (a machine whose
    speed drifts weighs on every key alike); printed as it goes. Per key: the times, the best
    wall time and the medians."""
    import statistics

    runs: dict = {k: [] for k in keys}
    for r in range(rounds):
        for k in keys:
            wall, cpu = one(k)
            runs[k].append((wall, cpu))
            print(f"round {r + 1}: {k}: {wall:.1f} s, {cpu:.1f} s CPU", flush=True)
    out = {str(k): {"wall_s": [round(w, 2) for w, _ in v], "cpu_s": [round(c, 2) for _, c in v],
                    "wall_best": round(min(w for w, _ in v), 2),
                    "wall_median": round(statistics.median(w for w, _ in v), 2),
                    "cpu_median": round(statistics.median(c for _, c in v), 2)} for k, v in runs.items()}
    for k, v in out.items():
        print(f"{k}: wall median {v['wall_median']} s (best {v['wall_best']}), CPU median {v['cpu_median']} s")
    return out


def bench_workdir(workdir: str | None, prefix: str, duration: float, height: int, fps: str) -> tuple[Path, Path]:
    """(work directory, the benchmark input in it: made unless there already)."""
    import tempfile

    work = Path(workdir or tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"input_{height}p{fps}_{int(duration)}s.mp4"
    make_input(src, duration, height, fps)
    return work, src


def timed(fn, *a, **kw):
    t0 = time.perf_counter()
    res = fn(*a, **kw)
    return time.perf_counter() - t0, res


def machine() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        mem = int(open("/proc/meminfo").readline().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    gpu = ""
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_mib": mem, "gpu": gpu, "python": platform.python_version(),
            "host": platform.node()}


def commit() -> str:
    """The commit measured: ECG_BENCH_COMMIT where set (the device machines run a copy of the
    working tree whose .git is not this checkout's: on 2026-12-07 it named a commit
    hours old), else this checkout's HEAD, with "+dirty" when tracked files differ."""
    if os.environ.get("ECG_BENCH_COMMIT"):
        return os.environ["ECG_BENCH_COMMIT"]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return f"{head}+dirty" if head and dirty else head
    except (OSError, subprocess.SubprocessError):
        return ""


# Settings that change what is measured (paths to the carried binaries do not).
_PATH_SETTINGS = {"ECG_CHROMIUM", "ECG_FFMPEG", "ECG_WEB_VENDOR_DIR", "ECG_TMP_DIR", "ECG_OUTPUT_DIR", "ECG_STATE_DIR"}


def save(result: dict, name: str) -> Path:
    """Write a result under bench/results, with the ECG_* settings it ran under."""
    result.setdefault("settings", {k: v for k, v in sorted(os.environ.items())
                                   if k.startswith("ECG_") and k not in _PATH_SETTINGS})
    out = ROOT / "bench" / "results" / name
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    return out
