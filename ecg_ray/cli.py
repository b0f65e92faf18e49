"""Command line: ``ecg-render render|demo|plugins`` (also ``python -m ecg_ray``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ecg_ray.config import load_settings
from ecg_ray.errors import RenderError
from ecg_ray.rendering.models import RenderOptions

DEMO = Path(__file__).with_name("demo")
DEMO_INPUT = DEMO / "bbb_720p25_5s.mp4"
DEMO_SCENARIO = DEMO / "demo_scenario.json"

# Exit codes: 0 ok, 2 bad input (the caller can fix it), 1 anything else.
_USER_ERRORS = {"invalid_input", "invalid_scenario", "invalid_options", "input_too_large", "fetch_failed",
                "asset_failed"}


class _ProgressPrinter:
    """A progress bar on a terminal; plain lines (at most one per 10%) otherwise."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.bar = None
        self.last_pct = -10.0
        self.stage = ""

    def __call__(self, p) -> None:
        if not self.enabled:
            return
        if self.tty:
            if p.stage == "rendering" and self.bar is None and p.frames_total:
                from tqdm import tqdm

                self.bar = tqdm(total=p.frames_total, unit="frame", desc=f"job {p.job_id}", file=sys.stderr)
            if self.bar is not None:
                self.bar.update(max(0, p.frames_done - self.bar.n))
                if p.stage != "rendering":
                    self.bar.set_postfix_str(p.stage)
            return
        if p.stage != self.stage:
            self.stage = p.stage
            print(f"[{p.job_id}] {p.stage}", file=sys.stderr, flush=True)
        if p.stage == "rendering" and p.frames_total and p.percent >= self.last_pct + 10:
            self.last_pct = p.percent // 10 * 10
            print(f"[{p.job_id}] rendering frame {p.frames_done}/{p.frames_total} ({p.percent:.0f}%)",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _options(ns: argparse.Namespace) -> RenderOptions:
    from pydantic import ValidationError

    try:
        # The container: --format, else the output's extension (out.webm is WebM), else MP4.
        ext = os.path.splitext(ns.output)[1].lower().lstrip(".")
        fmt = ns.format or (ext if ext in ("mp4", "mov", "webm") else "mp4")
        # (ECG_ENCODER names an H.264 encoder: not applied to HDR output, which is HEVC)
        default_encoder = "auto" if ns.dynamic_range == "hdr" else load_settings().encoder
        return RenderOptions(width=ns.width, height=ns.height, fps=ns.fps, quality=ns.quality,
                             encoder=ns.encoder or default_encoder, segments=ns.segments, format=fmt,
                             fit=ns.fit, dynamic_range=ns.dynamic_range,
                             alpha_video=ns.alpha_video)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise RenderError("invalid_options", f"--{err['loc'][0]}: {err['msg']}") from None


def _render_remote(ns: argparse.Namespace) -> int:
    """``render --server URL``: the job goes to a running service over HTTP (with ECG_API_KEY or
    --api-key where the service has keys); its progress is shown here, its video downloaded."""
    from ecg_ray.media.alpha import alpha_path
    from ecg_ray.rendering.progress import Progress
    from ecg_ray.scenario.files import read_scenario
    from ecg_ray.service.client import Client
    from ecg_ray.sources.inputs import is_url

    if not is_url(ns.input):
        raise RenderError("invalid_input", "with --server the input must be a URL the service can fetch "
                                           "(http, https or s3), not a local file")
    options = _options(ns).model_dump(include={"width", "height", "fps", "quality", "format", "encoder",
                                               "segments", "fit", "dynamic_range"}, exclude_none=True)
    if ns.alpha_video:
        options["alpha_video"] = {"format": ns.alpha_video}
    printer = _ProgressPrinter(enabled=not ns.quiet)
    t0 = time.monotonic()
    with Client(ns.server, timeout=60, api_key=ns.api_key) as client:
        st = client.submit(ns.input, read_scenario(ns.scenario), job_id=ns.job_id, options=options)

        def shown(s) -> None:
            stage = "rendering" if s.state == "processing" and s.frames_total else (
                "queued" if s.state == "queued" else "probing" if s.state == "processing" else "done")
            printer(Progress(s.job_id, stage, s.frames_done, s.frames_total))

        try:
            out = client.wait(st.job_id, poll=0.5, on_progress=shown)
        except KeyboardInterrupt:
            client.cancel(st.job_id)  # the job stops too, not only this command
            raise
        finally:
            printer.close()
        client.download(st.job_id, ns.output)
        if ns.alpha_video:
            client.download(st.job_id, alpha_path(ns.output, ns.alpha_video), file="captions_alpha")
    return _report(out, ns.output, f"job {out.job_id}: ", ns, t0)


def _report(out: Any, path: str, job: str, ns: argparse.Namespace, t0: float) -> int:
    """A finished render's warnings and its one line (or its JSON with --json)."""
    for w in out.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if ns.json:
        print(json.dumps(out.model_dump(), indent=1))
    else:
        print(f"wrote {path} ({job}{out.frames} frames, {out.width}x{out.height} @ {out.fps:g} fps, "
              f"{out.encoder}, {out.segments} segments{_reused(out)}) in {time.monotonic() - t0:.1f}s")
    return 0


def _reused(out: Any) -> str:
    """", N reused" where segments came from the segment cache."""
    stats = getattr(out, "stats", None)
    n = int(stats.get("reused_segments", 0)) if isinstance(stats, dict) else int(getattr(out, "reused_segments", 0))
    return f", {n} reused" if n else ""


def _new_key(ns: argparse.Namespace) -> int:
    """``key``: a new API key, and the entry that lets it in (only its hash: the key is shown once)."""
    from pydantic import ValidationError

    from ecg_ray.service.auth import KeyEntry, hash_key, new_key

    key = new_key()
    try:
        entry = KeyEntry(name=ns.name or ns.tenant, tenant=ns.tenant, rights=set(ns.rights.split(",")),
                         sha256=hash_key(key))
    except ValidationError as exc:
        err = exc.errors()[0]
        raise RenderError("invalid_options", f"--{err['loc'][0]}: {err['msg']}") from None
    print(f"key (give it to the client; it is not stored): {key}", file=sys.stderr)
    print(json.dumps(entry.model_dump(mode="json") | {"rights": sorted(entry.rights)}))
    return 0


def _render(input: str, scenario: str | Path, output: str, ns: argparse.Namespace) -> int:
    # Imported here, not at the top: `ecg-render plugins` and `--help` answer without Ray's import.
    from ecg_ray.rendering.renderer import Renderer
    from ecg_ray.scenario.files import read_scenario
    from ecg_ray.scenario.normalize import normalize
    from ecg_ray.sources.inputs import is_url

    options = _options(ns)
    # Check what can be checked before starting Ray: bad input fails in a second.
    data = read_scenario(scenario)
    normalize(data)
    if not is_url(input):
        from ecg_ray.media.probe import probe

        probe(input)
    printer = _ProgressPrinter(enabled=not ns.quiet)
    t0 = time.monotonic()
    renderer = Renderer(address=ns.address)
    if "ECG_SEGMENTS_PER_JOB" not in os.environ:
        # One-off on this machine: one segment per actor slot, as before the service's cut became
        # a function of the video alone (measured on 2 cores, 15 s of 1080p25 through the service:
        # 7 segments 2.13x of the bare transcode, 2 segments 1.65x). A --segment-cache DIR on the
        # same machine still sees the same cuts every time.
        renderer.settings = renderer.settings.model_copy(update={"segments_per_job": max(1, renderer.slots())})
    cache = None
    if getattr(ns, "segment_cache", None):
        from ecg_ray.service.segcache import LocalSegmentCache

        st = renderer.settings
        cache = LocalSegmentCache(ns.segment_cache, max(1, st.segment_cache_mb) << 20, st.segment_cache_ttl_s)
    try:
        # Relative define asset paths are relative to the scenario file.
        result = renderer.render(input, data, output, options, on_progress=printer,
                                 asset_dir=os.path.dirname(os.path.abspath(scenario)), cache=cache)
    finally:
        printer.close()
        renderer.close()
    return _report(result, result.output, "", ns, t0)


def _add_render_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, help="output path (.mp4, .mov or .webm)")
    p.add_argument("--format", choices=["mp4", "mov", "webm"],
                   help="container: mp4 and mov hold H.264/AAC, webm VP9/Opus (default: the output's extension)")
    p.add_argument("--segments", type=int,
                   help="number of time segments (default: from the video's length, ECG_SEGMENTS_PER_JOB)")
    p.add_argument("--width", type=int)
    p.add_argument("--height", type=int)
    p.add_argument("--fit", choices=["exact", "contain"], default="exact",
                   help="with --width and --height: exactly that size (default), or the source's shape inside it")
    p.add_argument("--fps", type=float)
    p.add_argument("--dynamic-range", choices=["sdr", "hdr"], default="sdr",
                   help="sdr (default): HDR sources tone-mapped to BT.709; hdr: HDR sources stay HDR (HEVC Main 10)")
    p.add_argument("--alpha-video", choices=["webm", "mov"],
                   help="also the captions alone with transparency, beside the output as OUT.captions.webm "
                        "(VP9 with alpha) or OUT.captions.mov (ProRes 4444); SDR only")
    p.add_argument("--quality", type=int, help="0-100, higher is better (default 70)")
    p.add_argument("--encoder", default=None, choices=["auto", "libx264", "h264_nvenc"],
                   help="default: ECG_ENCODER, else auto (h264_nvenc if a test encode opens, else libx264)")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ecg-render", description="Burn MotionText captions into a video.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="render INPUT with SCENARIO.json")
    r.add_argument("input", help="video path or http(s) URL")
    r.add_argument("scenario", help="MotionText scenario JSON file")
    _add_render_args(r)
    r.add_argument("--server", default=os.environ.get("ECG_SERVER"),
                   help="render on a running service at this URL (default: ECG_SERVER; unset: here)")
    r.add_argument("--api-key", default=None, help="the service's API key (default: ECG_API_KEY)")
    r.add_argument("--job-id", default=None, help="with --server: the job's id (default: one is made)")
    r.add_argument("--segment-cache", default=None, metavar="DIR",
                   help="here (not with --server): keep the segments in DIR, and take from it those an earlier "
                        "render of the same video and settings made that no edited caption reaches")
    d = sub.add_parser("demo", help="render the built-in sample (Korean and English captions, several effects)")
    _add_render_args(d)
    sub.add_parser("plugins", help="list the installed MotionText plugins")
    st = sub.add_parser("still", help="render one frame (over the video frame when --input is given)")
    st.add_argument("scenario")
    st.add_argument("--at", type=float, required=True, help="time in seconds")
    st.add_argument("-o", "--output", required=True, help="PNG path")
    st.add_argument("--input", help="video to draw over (else transparent)")
    st.add_argument("--width", type=int)
    st.add_argument("--height", type=int)
    k = sub.add_parser("key", help="make an API key: prints its entry for ECG_API_KEYS_FILE (the key goes to stderr)")
    k.add_argument("--tenant", required=True, help="whose jobs the key submits and sees")
    k.add_argument("--rights", default="submit,read,cancel", help="comma separated: submit, read, cancel, admin")
    k.add_argument("--name", default="", help="a label for logs (default: the tenant)")
    g = sub.add_parser("gallery", help="every plugin at five points of its animation, on one sheet")
    g.add_argument("-o", "--output", required=True, help="PNG path")
    return ap


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        try:
            load_settings()  # a bad environment variable: one line naming it, before anything starts
        except ValueError as exc:
            raise RenderError("invalid_options", str(exc)) from None
        if ns.cmd == "render" and ns.server:
            if ns.segment_cache:
                raise RenderError("invalid_options", "--segment-cache renders here; with --server the service "
                                                     "keeps its own cache (ECG_SEGMENT_CACHE_MB)")
            return _render_remote(ns)
        if ns.cmd == "render":
            return _render(ns.input, ns.scenario, ns.output, ns)
        if ns.cmd == "key":
            return _new_key(ns)
        if ns.cmd == "demo":
            return _render(str(DEMO_INPUT), DEMO_SCENARIO, ns.output, ns)
        if ns.cmd == "still":
            from ecg_ray.rendering.still import render_still
            from ecg_ray.scenario.files import read_scenario

            _, warnings = render_still(read_scenario(ns.scenario), ns.at, ns.output, input=ns.input,
                                       width=ns.width, height=ns.height,
                                       asset_dir=os.path.dirname(os.path.abspath(ns.scenario)))
            for w in warnings:
                print(f"warning: {w}", file=sys.stderr)
            print(f"wrote {ns.output}")
            return 0
        if ns.cmd == "gallery":
            from ecg_ray.rendering.still import gallery

            n = gallery(ns.output)
            print(f"wrote {ns.output} ({n} plugins)")
            return 0
        if ns.cmd == "plugins":
            from ecg_ray.scenario.plugins import installed_plugins

            for info in installed_plugins().values():
                alias = f"  (also: {', '.join(info.aliases)})" if info.aliases else ""
                print(f"{info.name}@{info.version}  {info.type:<7} targets={','.join(info.targets)}{alias}")
            return 0
    except RenderError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 2 if exc.code in _USER_ERRORS else 1
    except KeyboardInterrupt:
        print("error: cancelled", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
