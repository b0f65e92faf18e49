"""What tone mapping an HDR phone video costs: a render of a 10-bit HLG source (tone-mapped to
BT.709 SDR inside each segment's FFmpeg, captions drawn after) against a bare FFmpeg transcode
doing the same tone mapping with the same encoder settings, in alternated pairs; and the bare
transcode without tone mapping (the pass over every frame that tone mapping adds).

Self-contained: the HLG source is made from the vendored demo clip (looped, scaled, converted
with zscale: SDR white at 203 cd/m2, HEVC Main 10), as the tests make theirs.

    python bench/hdr_tonemap.py                       # 20 s 720p25, 3 pairs (this 2-core VM)
    python bench/hdr_tonemap.py --height 1080 --duration 60 --fps 30   # the H100 machine

Where FFmpeg can open a Vulkan device (a GPU node), libplacebo's tone mapping on the GPU is
timed too, as a bare transcode (the renderer does not use it); elsewhere the result says why not.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from pathlib import Path

from common import bench_workdir, commit, machine, make_scenario, save

from ecg_ray import probe
from ecg_ray.config import load_settings
from ecg_ray.errors import RenderError
from ecg_ray.media import ffmpeg
from ecg_ray.media.decode import source_filters
from ecg_ray.media.encode import encoder_args, tags_filter
from ecg_ray.media.models import EncoderSettings
from ecg_ray.rendering.models import RenderOptions
from ecg_ray.rendering.plan import output_format

_TO_HLG = ("setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv,"  # (the input is untagged)
           "zscale=t=linear:npl=203,format=gbrpf32le,zscale=p=2020:t=arib-std-b67:m=2020_ncl:r=tv:npl=203,"
           "format=yuv420p10le")
_PLACEBO = ("hwupload,libplacebo=tonemapping=mobius:colorspace=bt709:color_primaries=bt709:color_trc=bt709:"
            "range=tv:format=yuv420p,hwdownload,format=yuv420p")


def make_hlg(sdr: Path, dst: Path) -> None:
    if dst.exists():
        return
    part = dst.with_suffix(".part.mp4")  # renamed when whole: a stopped run leaves no half source
    ffmpeg.run(["-i", str(sdr), "-map", "0:v:0", "-map", "0:a:0?", "-vf", _TO_HLG, "-c:v", "libx265",
                "-preset", "ultrafast", "-x265-params", "log-level=error:crf=16", "-pix_fmt", "yuv420p10le",
                "-color_primaries", "bt2020", "-color_trc", "arib-std-b67", "-colorspace", "bt2020nc",
                "-c:a", "copy", "-y", str(part)], what="HLG source")
    part.rename(dst)


def timed_run(args: list[str], what: str) -> float:
    t = time.perf_counter()
    ffmpeg.run(args, what=what)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", default="25")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--quality", type=int, default=70)
    ap.add_argument("--cues", type=int, default=8)
    ap.add_argument("--segments", type=int, default=None)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--name", default=None)
    a = ap.parse_args()

    settings = load_settings()
    work, sdr = bench_workdir(a.workdir, "ecg-hdr-", a.duration, a.height, a.fps)
    src = work / f"hlg_{a.height}p{a.fps}_{int(a.duration)}s.mp4"
    make_hlg(sdr, src)
    info = probe(str(src))
    out = output_format(info, RenderOptions(quality=a.quality), settings)
    enc = EncoderSettings(codec="libx264", quality=a.quality, preset=settings.x264_preset)
    # The renderer's own filters and encoder arguments, so the bare transcode does the same work
    # less the captions, the segmenting and the join.
    tonemap_vf = ",".join([*source_filters(info, out), "format=yuv420p", tags_filter(out)])
    common = ["-i", str(src), "-map", "0:v:0", "-map", "0:a:0?"]
    tail = [*encoder_args(enc, out), "-c:a", "copy", "-movflags", "+faststart", "-y"]
    bare_tm = [*common, "-vf", tonemap_vf, *tail, str(work / "bare_tonemap.mp4")]
    # Without tone mapping: the 10-bit frames only converted to 8-bit yuv420p (what the pipeline
    # did before, a wrong picture): the pass tone mapping adds is the difference.
    bare_plain = [*common, "-vf", "format=yuv420p", *tail, str(work / "bare_plain.mp4")]
    placebo = ["-init_hw_device", "vulkan=vk", "-filter_hw_device", "vk", *common, "-vf", _PLACEBO, *tail,
               str(work / "bare_placebo.mp4")]
    placebo_why = ""
    try:
        ffmpeg.run([*placebo[:-1], "-frames:v", "5", str(work / "placebo_check.mp4")], what="libplacebo check")
    except RenderError as exc:
        placebo_why = exc.message[-300:]

    result: dict = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "commit": commit(),
        "machine": machine(),
        "input": {"duration": info.duration, "frames": info.frame_count, "size": f"{info.width}x{info.height}",
                  "fps": float(info.fps), "color": info.color_info().model_dump(), "cues": a.cues,
                  "content": "Big Buck Bunny clip looped, converted to HLG (SDR white at 203 cd/m2)"},
        "encoder": {"codec": "libx264", "preset": settings.x264_preset, "quality": a.quality},
        "tonemap_filters": tonemap_vf,
    }

    from ecg_ray.rendering.renderer import Renderer

    scenario = make_scenario(a.duration, a.cues)
    r = Renderer()
    t0 = time.perf_counter()
    r.ensure_actors(min(r.slots(), a.segments or r.slots()))
    cold = r.render(str(src), scenario, str(work / "render0.mp4"),
                    RenderOptions(quality=a.quality, segments=a.segments))
    result["renderer_cold_s"] = round(time.perf_counter() - t0, 2)
    result["output_color"] = cold.output_color.model_dump() if cold.output_color else None
    pairs = []
    try:
        for i in range(a.pairs):
            row = {"bare_plain_s": timed_run(bare_plain, "bare transcode"),
                   "bare_tonemap_s": timed_run(bare_tm, "bare tone-mapping transcode")}
            if not placebo_why:
                row["bare_libplacebo_s"] = timed_run(placebo, "bare libplacebo transcode")
            row["render_s"] = r.render(str(src), scenario, str(work / "render.mp4"),
                                       RenderOptions(quality=a.quality, segments=a.segments)).seconds
            row = {k: round(v, 2) for k, v in row.items()}
            row["render_vs_bare_tonemap"] = round(row["render_s"] / row["bare_tonemap_s"], 3)
            row["tonemap_vs_plain"] = round(row["bare_tonemap_s"] / row["bare_plain_s"], 3)
            pairs.append(row)
            print(f"round {i + 1}: {row}", flush=True)
    finally:
        r.close()

    def med(key: str) -> float | None:
        vals = [p[key] for p in pairs if key in p]
        return round(statistics.median(vals), 3) if vals else None

    result["rounds"] = pairs
    result["median"] = {k: med(k) for k in ("bare_plain_s", "bare_tonemap_s", "bare_libplacebo_s", "render_s",
                                            "render_vs_bare_tonemap", "tonemap_vs_plain")}
    result["libplacebo"] = "measured" if not placebo_why else f"not available here: {placebo_why}"
    print(f"medians: {result['median']}", flush=True)
    name = a.name or (f"hdr-tonemap-{result['machine']['cores']}core-{a.height}p-{int(a.duration)}s-"
                      f"{dt.date.today().isoformat()}.json")
    print("saved", save(result, name))


if __name__ == "__main__":
    main()
