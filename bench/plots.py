"""Draw the benchmark results (bench/results/*.json) as SVG charts and write bench/PLOTS.md.

    python3 bench/plots.py                                   # from the repo root (or anywhere)
    python3 bench/plots.py --results DIR --out DIR [--page FILE]

Writes, under --out (default bench/plots/):
  stages-<name>.svg           time per step of each overhead-<name>.json
  e2e-<name>.svg              bare transcode vs renderer (vs the original way) of each e2e-<name>.json
  throughput-vs-segments.svg  frames/s against segment count, from codec-*.json and e2e-*.json
  scale-throughput.svg        jobs per minute by Ray node count, from scale-throughput-*.json
  scale-steady.svg            the same for a queue that never runs dry, from scale-steady-*.json
  scale-ceiling.svg           what the 2-GPU host's second half adds: bare-queue-*.json beside scale-steady-*-ceiling-*
  memory-<name>.svg           peak memory per segment actor, by process where recorded, of each memory-<name>.json
and the page --page (default: PLOTS.md in the folder above --out, i.e. bench/PLOTS.md) that
embeds them all, each with the name of its source JSON.

Standard library only: matplotlib is not installed where the benchmarks run, so the SVG is
written by hand. The output is deterministic (sorted inputs, no generation timestamp) so that
rerunning on unchanged results changes nothing in git. Both the plots and the page are rebuilt
from scratch each run: rerun after adding results. Files missing what a plot needs are skipped
with a note on stderr, never a crash.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
W = 700  # drawn at its natural size: readable at 700 px wide
FONT = "DejaVu Sans, Arial, Helvetica, sans-serif"
PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#e15759", "#76b7b2", "#edc948", "#9c755f"]
GREY, BLUE, RED = "#9a9a9a", "#4e79a7", "#e15759"
PREFIXES = ("stages-", "e2e-", "throughput-", "scale-", "memory-")  # our SVGs, the only ones we ever delete


def note(msg: str) -> None:
    print(f"note: {msg}", file=sys.stderr)


def num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def obj(d: dict, key: str) -> dict:
    """d[key] if it is a JSON object, else {}: older or odd files must not crash the run."""
    v = d.get(key)
    return v if isinstance(v, dict) else {}


def text(x, y, s, size=12, anchor="start", fill="#222", bold=False) -> str:
    weight = ' font-weight="bold"' if bold else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'fill="{fill}"{weight}>{escape(str(s))}</text>')


def rect(x, y, w, h, fill) -> str:
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{h:.1f}" fill="{fill}"/>'


def document(height: float, title: str, subtitle: str, body: list[str]) -> str:
    # White background so the charts stay readable on dark-themed Markdown viewers.
    head = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height:.0f}" '
            f'viewBox="0 0 {W} {height:.0f}" font-family="{FONT}">',
            f"<title>{escape(title)}</title>", rect(0, 0, W, height, "#fff"),
            text(W / 2, 24, title, 15, "middle", bold=True), text(W / 2, 43, subtitle, 11, "middle", "#555")]
    return "\n".join(head + body + ["</svg>", ""])


def nice_ticks(top: float) -> list[float]:
    """About five round tick values from 0 up to at least `top` (never fewer than two)."""
    raw = max(top, 1e-9) / 5
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [i * step for i in range(max(1, math.ceil(top / step - 1e-9)) + 1)]


def hbars(title, subtitle, rows, unit, legend=(), foot="") -> str:
    """Horizontal bar chart. rows: [(label, [(value, colour), ...], end_label)], parts stacked."""
    left = min(max(len(r[0]) for r in rows) * 6.8 + 20, 300)
    right = W - 15 - 7.5 * max(len(r[2]) for r in rows)  # room for the value printed past the longest bar
    top, bar, gap = 62, 24, 12
    totals = [sum(v for v, _ in parts) for _, parts, _ in rows]
    ticks = nice_ticks(max(totals) * 1.02)
    scale = (right - left) / ticks[-1]
    bottom = top + len(rows) * (bar + gap)
    body = []
    for t in ticks:  # grid first, so bars draw over it
        x = left + t * scale
        body += [f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{bottom}" stroke="#e3e3e3"/>',
                 text(x, bottom + 15, f"{t:g}", 11, "middle", "#555")]
    for i, (label, parts, end) in enumerate(rows):
        y = top + i * (bar + gap)
        body.append(text(left - 8, y + bar / 2 + 4, label, 12, "end"))
        x = left
        for v, colour in parts:
            body.append(rect(x, y, v * scale, bar, colour))
            if len(parts) > 1 and v * scale > 44:  # stacked part wide enough: print its own value
                body.append(text(x + v * scale / 2, y + bar / 2 + 4, f"{v:.1f}", 11, "middle", "#fff"))
            x += v * scale
        body.append(text(x + 5, y + bar / 2 + 4, end, 12, bold=True))
    body += [f'<line x1="{left}" y1="{top - 6}" x2="{left}" y2="{bottom}" stroke="#333"/>',
             text((left + right) / 2, bottom + 33, unit, 12, "middle")]
    y = bottom + 52
    if legend:
        x = left
        for name, colour in legend:
            body += [rect(x, y - 10, 12, 12, colour), text(x + 17, y, name, 11)]
            x += 30 + 6.5 * len(name)
        y += 20
    if foot:
        body.append(text(12, y, foot, 10, fill="#555"))
        y += 16
    return document(y, title, subtitle, body)


def machine_of(d: dict) -> str:
    m = obj(d, "machine")
    gpus = [g.split(",")[0].strip() for g in str(m.get("gpu") or "").splitlines() if g.strip()]
    gpu = (f"{len(gpus)}x {gpus[0]}" if len(gpus) > 1 else gpus[0]) if gpus else "no GPU"
    return f"{m.get('cores', '?')} cores, {gpu}"


def when(d: dict) -> str:
    return f"commit {d.get('commit', '?')}, {str(d.get('date', '?'))[:10]}"


def stages_plot(name: str, d: dict) -> str | None:
    secs = d.get("seconds")
    if not isinstance(secs, dict):
        return None
    steps = [(k, v) for k, v in secs.items() if num(v) and v >= 0]  # JSON keeps the run's step order
    if not steps:
        return None
    base = steps[0][1] if "bare" in steps[0][0] and steps[0][1] > 0 else None
    rows = [(k, [(v, GREY if i == 0 and base else BLUE)],
             f"{v:.2f} s" + (f" ({v / base:.2f}x)" if base and i else "")) for i, (k, v) in enumerate(steps)]
    sub = f"{machine_of(d)} · {d.get('frames', '?')} frames {d.get('size', '')} · {when(d)}"
    return hbars(f"Time per stage: {name}", sub, rows, "seconds (one segment, one process)",
                 foot="ratios in brackets are against step 1, the bare transcode" if base else "")


MEMORY_PARTS = ("ffmpeg", "chromium", "actor", "playwright", "other")


def memory_plot(name: str, d: dict) -> str | None:
    """Each run's highest actor peak; stacked by process kind where memory.py recorded them."""
    runs = [r for r in d.get("runs") or [] if isinstance(r, dict) and num(r.get("peak_mb_max"))]
    if not runs:
        return None
    rows = []
    for r in runs:
        label = f"{r.get('duration_s', 0):g} s" + (f", job {r['job']}" if num(r.get("job")) else "")
        peaks = obj(r, "peak_mb_per_actor")
        top = max(peaks, key=lambda k: peaks[k]) if peaks else None
        by = obj(obj(r, "peak_mb_by_process"), top) if top else {}
        parts = [(by[k], PALETTE[i]) for i, k in enumerate(MEMORY_PARTS) if num(by.get(k))]
        rows.append((label, parts or [(r["peak_mb_max"], BLUE)], f"{r['peak_mb_max']:g} MB"))
    legend = [(k, PALETTE[i]) for i, k in enumerate(MEMORY_PARTS)
              if any(num(obj(obj(r, "peak_mb_by_process"), a).get(k))
                     for r in runs for a in obj(r, "peak_mb_by_process"))]
    what = f"{d.get('height', '?')}p{d.get('fps', '')}" + (", karaoke" if d.get("karaoke") else "")
    sub = f"{machine_of(d)} · {what} · {when(d)}"
    return hbars(f"Peak memory per segment actor: {name}", sub, rows,
                 "MB (PSS of the actor with its Chromium and FFmpeg, the highest of the actors)", legend,
                 foot="goal (issue 6): at most 1 GB, flat in the video's length")


def bare_best(d: dict) -> float | None:
    """Best bare transcode: older files hold first/second/best, newer runs/best, scale files a number."""
    b = d.get("bare_transcode_s")
    if num(b):
        return b
    if not isinstance(b, dict):
        return None
    if num(b.get("best")):
        return b["best"]
    runs = b.get("runs") if isinstance(b.get("runs"), list) else []
    vals = [v for v in runs + [b.get("first"), b.get("second")] if num(v)]
    return min(vals) if vals else None


def e2e_plot(name: str, d: dict) -> str | None:
    r, bare = obj(d, "renderer"), bare_best(d)
    warm = r.get("warm_s")
    if not (num(bare) and num(warm) and bare > 0 and warm > 0):
        return None
    ratio = r.get("ratio_vs_bare") if num(r.get("ratio_vs_bare")) else warm / bare
    segs = f", {r['segments']} segments" if num(r.get("segments")) else ""
    rows = [("bare transcode (best)", [(bare, GREY)], f"{bare:.2f} s"),
            (f"renderer (warm{segs})", [(warm, BLUE)], f"{warm:.2f} s")]
    legend, foot = (), ""
    st = obj(r, "stats")
    if num(st.get("segments_s")) and num(st.get("join_s")) and min(st["segments_s"], st["join_s"]) >= 0:
        # stats belong to one run (the first), warm_s is the best run: hence "other" is floored at 0.
        seg, join = st["segments_s"], st["join_s"]
        other = max(warm - seg - join, 0.0)
        rows.append(("renderer by stage *", [(seg, PALETTE[0]), (join, PALETTE[1]), (other, PALETTE[2])],
                     f"{seg + join + other:.2f} s"))
        legend = (("segments_s", PALETTE[0]), ("join_s", PALETTE[1]), ("other = warm - both, >= 0", PALETTE[2]))
        foot = "* from renderer.stats, which are the first run's, so the stack need not equal the warm time"
    orig = obj(d, "original_way").get("seconds_full_video")
    if num(orig) and orig > 0:
        extra = ", extrapolated" if obj(d, "original_way").get("extrapolated") else ""
        rows.append((f"original way (full video{extra})", [(orig, RED)], f"{orig:.2f} s"))
    inp = obj(d, "input")
    sub = (f"{machine_of(d)} · {inp.get('frames', '?')} frames {inp.get('size', '')}, "
           f"{inp.get('cues', '?')} cues · {when(d)}")
    return hbars(f"End to end: {name}, renderer {ratio:.2f}x bare", sub, rows, "seconds", legend, foot)


def throughput_plot(series, points) -> str:
    """frames/s against segment count: codec runs as lines, e2e runs as numbered diamonds."""
    xs = [x for _, pts in series for x, _ in pts] + [x for _, x, _ in points]
    ys = [y for _, pts in series for _, y in pts] + [y for _, _, y in points]
    lo, hi = math.floor(math.log2(min(xs))), math.ceil(math.log2(max(xs)))
    hi = max(hi, lo + 1)
    left, right, top, bottom = 70, W - 25, 60, 360
    yt = nice_ticks(max(ys) * 1.1)
    # log2 x axis: segment counts are powers of two, spread evenly this way
    px = lambda x: left + (math.log2(x) - lo + 0.3) / (hi - lo + 0.6) * (right - left)
    py = lambda y: bottom - y / yt[-1] * (bottom - top)
    body = []
    for t in yt:
        body += [f'<line x1="{left}" y1="{py(t):.1f}" x2="{right}" y2="{py(t):.1f}" stroke="#e3e3e3"/>',
                 text(left - 6, py(t) + 4, f"{t:g}", 11, "end", "#555")]
    for e in range(lo, hi + 1):
        body.append(text(px(2 ** e), bottom + 16, 2 ** e, 11, "middle", "#555"))
    body += [f'<polyline points="{left},{top} {left},{bottom} {right},{bottom}" fill="none" stroke="#333"/>',
             text((left + right) / 2, bottom + 34, "segments (actors) per job, log scale", 12, "middle"),
             f'<text x="18" y="{(top + bottom) / 2:.0f}" font-size="12" text-anchor="middle" '
             f'transform="rotate(-90 18 {(top + bottom) / 2:.0f})">frames per second</text>']
    y = bottom + 58
    for i, (label, pts) in enumerate(series):
        c = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{px(x):.1f},{py(v):.1f}" for x, v in pts)
        body.append(f'<polyline points="{coords}" fill="none" stroke="{c}" stroke-width="2"/>')
        body += [f'<circle cx="{px(x):.1f}" cy="{py(v):.1f}" r="4" fill="{c}"/>' for x, v in pts]
        body += [f'<line x1="{left}" y1="{y - 4}" x2="{left + 22}" y2="{y - 4}" stroke="{c}" stroke-width="2"/>',
                 text(left + 30, y, label, 11)]
        y += 17
    placed: list[tuple[float, float, float]] = []  # (x, y, width) of point numbers already drawn
    for i, (label, x, v) in enumerate(points, 1):
        cx, cy = px(x), py(v)
        body.append(f'<path d="M{cx:.1f},{cy - 6:.1f} l6,6 l-6,6 l-6,-6 z" fill="#333"/>')
        tx, w = cx + 8, 7 * len(str(i)) + 3
        while any(abs(ty - cy) < 12 and tx < ox + ow and ox < tx + w for ox, ty, ow in placed):
            tx += 8  # slide right past numbers of points that (nearly) coincide
        placed.append((tx, cy, w))
        body.append(text(tx, cy + 4, i, 11, bold=True))
        body.append(text(left, y, f"◆ {i}: {label}", 11))
        y += 17
    sub = "lines: codec path only (codec-*.json, x264_threads=0, no hwdec); ◆: whole renderer, warm (e2e-*.json)"
    return document(y + 4, "Throughput against segment count", sub, body)


def load(results: Path) -> dict[str, dict]:
    data = {}
    for f in sorted(results.iterdir()):  # sorted: same input order, same output, every run
        if f.suffix != ".json" or not f.is_file():
            note(f"skipping {f.name}: not a .json file")
            continue
        try:
            d = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            note(f"skipping {f.name}: {e}")
            continue
        if isinstance(d, dict):
            data[f.name] = d
        else:
            note(f"skipping {f.name}: not a JSON object")
    return data


def codec_series(fname: str, d: dict):
    frames, best = obj(d, "overlays").get("frames"), {}
    for run in d.get("runs") if isinstance(d.get("runs"), list) else []:
        ok = isinstance(run, dict) and run.get("x264_threads") == 0 and run.get("hwdec") == "none"
        if ok and num(run.get("segments")) and run["segments"] > 0 and num(run.get("seconds")) and run["seconds"] > 0:
            # the fastest run per segment count, should a file repeat a setting
            best[run["segments"]] = min(run["seconds"], best.get(run["segments"], math.inf))
    if not (num(frames) and best):
        return None
    label = f"{str(d.get('date', '?'))[:16].replace('T', ' ')} {d.get('commit', '?')} ({fname})"
    return label, [(n, frames / t) for n, t in sorted(best.items())]


def e2e_point(fname: str, d: dict):
    r, frames = obj(d, "renderer"), obj(d, "input").get("frames")
    n, warm = r.get("segments"), r.get("warm_s")
    if not (num(frames) and num(n) and n > 0 and num(warm) and warm > 0):
        return None
    return f"{fname} ({n} segments, {frames / warm:.1f} fps; {machine_of(d)})", n, frames / warm


def scale_plot(runs: list[tuple[str, dict]], prefix: str = "scale-throughput-",
               title: str = "Scale-out: jobs per minute by Ray node count") -> str:
    runs = sorted(runs, key=lambda r: (r[1]["ray_nodes"], r[0]))
    # the run's own name (pinned, contended, one node of 32 cores...) tells apart runs of one node count
    rows = [(f"{f[len(prefix):-len('.json')]}: {d['ray_nodes']} Ray node{'s' if d['ray_nodes'] != 1 else ''}, "
             f"{d.get('actors', '?')} actors", [(d["jobs_per_minute"], PALETTE[i % len(PALETTE)])],
             f"{d['jobs_per_minute']:.2f}") for i, (f, d) in enumerate(runs)]
    first = runs[0][1]
    inp = obj(first, "input")
    machines = {machine_of(d) for _, d in runs}
    where = machine_of(first) if len(machines) == 1 else f"{len(machines)} machines (each row names its own)"
    sub = f"{where} · jobs of {inp.get('frames', '?')} frames {inp.get('size', '')} · {when(first)}"
    return hbars(title, sub, rows, "jobs per minute")


def ceiling_plot(data: dict[str, dict]) -> tuple[str, list[str]] | None:
    """What the second half of a 2-GPU host adds: bare transcodes (bare_queue.py, half against
    whole) beside the renderer's steady queue (one node against two) of the same round."""
    rows, used = [], []
    for fname in sorted(data):
        if not fname.startswith("bare-queue-half-"):
            continue
        rest = fname[len("bare-queue-half-"):]                  # h200x2-r1-TAG.json
        host, _, rnd = rest.partition("-")
        whole = "bare-queue-whole-" + rest
        r1, r2 = (f"scale-steady-{n}node-{host}-ceiling-{rnd}" for n in (1, 2))
        if whole not in data or r1 not in data or r2 not in data:
            continue
        label = rnd[:-len(".json")]
        bare = data[whole]["frames_per_s"] / data[fname]["frames_per_s"]
        ren = data[r2]["frames_per_s"] / data[r1]["frames_per_s"]
        rows += [(f"{label}: bare transcodes", [(bare, PALETTE[0])], f"{bare:.2f}x"),
                 (f"{label}: the renderer", [(ren, PALETTE[1])], f"{ren:.2f}x")]
        used += [fname, whole, r1, r2]
    if not rows:
        return None
    first = data[used[0]]
    sub = f"{machine_of(first)} · frames a second, all cores against one GPU's half · {when(first)}"
    return hbars("Two GPUs: what the host's second half adds", sub, rows, "throughput, two halves / one",
                 foot="Issue 6 asks 1.8x of the renderer; bare: 8 (16) transcodes at once, x264 and decoder "
                      "4 threads each"), used


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", type=Path, default=HERE / "results", help="JSON results to read")
    ap.add_argument("--out", type=Path, default=HERE / "plots", help="folder for the SVG files")
    ap.add_argument("--page", type=Path, default=None, help="Markdown page (default: PLOTS.md beside --out)")
    a = ap.parse_args()
    page = a.page or a.out.parent / "PLOTS.md"
    data = load(a.results)
    sections: dict[str, list] = {s: [] for s in ("Time per stage", "End to end",
                                                 "Throughput against segment count", "Scale-out",
                                                 "Memory per segment actor")}
    written: dict[str, str] = {}  # svg file name -> its text

    def emit(section: str, svg_name: str, svg: str, sources: list[str]) -> None:
        written[svg_name] = svg
        sections[section].append((svg_name, sources))

    series, points, used, scale, steady = [], [], [], [], []
    for fname, d in data.items():
        stem = fname[:-len(".json")]
        for prefix, out_prefix, section, make in (("overhead-", "stages-", "Time per stage", stages_plot),
                                                   ("e2e-", "e2e-", "End to end", e2e_plot),
                                                   ("memory-", "memory-", "Memory per segment actor", memory_plot)):
            if stem.startswith(prefix):
                svg = make(stem[len(prefix):], d)
                if svg:
                    emit(section, out_prefix + stem[len(prefix):] + ".svg", svg, [fname])
                else:
                    note(f"skipping {fname}: lacks what the {section.lower()} plot needs")
        for prefix, make, into in (("codec-", codec_series, series), ("e2e-", e2e_point, points)):
            if fname.startswith(prefix):
                got = make(fname, d)
                if got:
                    into.append(got)
                    used.append(fname)
                else:
                    note(f"skipping {fname} in the throughput plot: no frames, segment count or time to use")
        if fname.startswith(("scale-throughput-", "scale-steady-")):
            if num(d.get("ray_nodes")) and num(d.get("jobs_per_minute")) and d["jobs_per_minute"] >= 0:
                (scale if fname.startswith("scale-throughput-") else steady).append((fname, d))
            else:
                note(f"skipping {fname}: no ray_nodes or jobs_per_minute")
    if series or points:
        emit("Throughput against segment count", "throughput-vs-segments.svg",
             throughput_plot(series, points), used)
    if scale:
        emit("Scale-out", "scale-throughput.svg", scale_plot(scale), [f for f, _ in scale])
    if steady:
        emit("Scale-out", "scale-steady.svg",
             scale_plot(steady, "scale-steady-", "A steady queue: jobs per minute by Ray node count"),
             [f for f, _ in steady])

    got = ceiling_plot(data)
    if got:
        emit("Scale-out", "scale-ceiling.svg", *got)

    # Rebuilt from scratch: drop our SVGs whose result is gone, so the folder matches the page.
    a.out.mkdir(parents=True, exist_ok=True)
    for old in sorted(a.out.glob("*.svg")):
        if old.name.startswith(PREFIXES) and old.name not in written:
            old.unlink()
    for svg_name, svg in written.items():
        (a.out / svg_name).write_text(svg, encoding="utf-8", newline="\n")

    rel = lambda p: Path(os.path.relpath(p, page.parent)).as_posix()
    link = lambda p: quote(rel(p))  # file names may hold spaces or brackets
    try:  # name the results folder from the repo root, as the command is run from there
        shown = a.results.resolve().relative_to(HERE.parent).as_posix()
    except ValueError:
        shown = rel(a.results)
    md = ["# Benchmark plots", "", f"Generated by `python bench/plots.py` from the JSON files in `{shown}/`: "
          "do not edit by hand, and regenerate it after adding new results.", ""]
    for section, items in sections.items():
        md += [f"## {section}", ""] + ([] if items else ["_No results of this kind._", ""])
        for svg_name, sources in items:
            src = ", ".join(f"[`{s}`]({link(a.results / s)})" for s in sources)
            md += [f"![{svg_name[:-4]}]({link(a.out / svg_name)})", "", f"Source: {src}", ""]
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(md), encoding="utf-8", newline="\n")
    print(f"wrote {len(written)} plots to {a.out} and {page}")


if __name__ == "__main__":
    main()
