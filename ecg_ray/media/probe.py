"""Probe a source video: size, exact frame rate, every frame's time, rotation, audio."""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from statistics import median
from typing import Any

from ecg_ray.config import Settings, load_settings
from ecg_ray.errors import RenderError
from ecg_ray.media.hdrmeta import hdr_metadata
from ecg_ray.media.models import AudioStream, ProbeResult

log = logging.getLogger(__name__)

# Below this the constant output rate is raised to it (sample and hold): a source with frames
# minutes apart would otherwise get a rate that rounds to 0 fps (a ZeroDivisionError here, an
# empty plan later) or output frames so far apart that no caption is ever drawn.
MIN_RATE = Fraction(1)
# More source frames than this per second of the duration limit is no video anyone sends:
# the packet list (and every segment's copy of the frame times) is bounded by it.
MAX_SOURCE_FPS = 1000
# Single-picture demuxers: a still image is not a video (it would become a 1-frame clip).
_IMAGE_FORMATS = ("image2", "image2pipe")


def _rotation(stream: Any, first_frame: Any) -> int:
    rot = getattr(first_frame, "rotation", None) if first_frame is not None else None
    if rot is None:
        try:
            rot = int(float(stream.metadata.get("rotate", 0)))
        except (TypeError, ValueError):
            rot = 0
    # PyAV reports the display matrix angle counter-clockwise; what matters is the quarter turn.
    return int(round(rot / 90.0)) * 90 % 360


def _rate(count: int, span: float, declared: Fraction | None) -> Fraction:
    """The constant rate to render at: the declared average where it agrees with the frames
    (never below MIN_RATE)."""
    return max(MIN_RATE, _measured_or_declared(count, span, declared))


def _measured_or_declared(count: int, span: float, declared: Fraction | None) -> Fraction:
    measured = Fraction(count, 1) / Fraction(span).limit_denominator(1_000_000) if span > 0 else None
    if declared and declared > 0:
        if measured is None or abs(float(declared) - float(measured)) <= 0.01 * float(declared):
            return declared
    if measured is None:
        return declared if declared and declared > 0 else Fraction(25)
    # Keep well-known NTSC rates exact.
    for num, den in ((24000, 1001), (30000, 1001), (60000, 1001)):
        if abs(float(measured) - num / den) < 0.002:
            return Fraction(num, den)
    return measured.limit_denominator(1001)


# FFmpeg's names for the AVColorSpace / AVColorRange values PyAV hands out as numbers
# (unspecified and reserved ones left out: "" means unknown).
_CSP = {0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "ycgco", 9: "bt2020nc",
        10: "bt2020c"}
_RANGE = {1: "tv", 2: "pc"}
_PRIMARIES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film", 9: "bt2020",
              10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213"}
_TRC = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear", 9: "log100",
        10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12",
        16: "smpte2084", 17: "smpte428", 18: "arib-std-b67"}


def _color_tags(frame: Any) -> dict[str, Any]:
    def name(table: dict[int, str], value: Any) -> str:
        try:
            return table.get(int(value), "")
        except (TypeError, ValueError):
            return ""

    fmt = getattr(frame, "format", None)
    comps = getattr(fmt, "components", None) or ()
    return {"colorspace": name(_CSP, getattr(frame, "colorspace", None)),
            "color_range": name(_RANGE, getattr(frame, "color_range", None)),
            "color_primaries": name(_PRIMARIES, getattr(frame, "color_primaries", None)),
            "color_trc": name(_TRC, getattr(frame, "color_trc", None)),
            "bit_depth": max((int(c.bits) for c in comps), default=8),
            "pix_fmt": getattr(fmt, "name", "") or ""}


def _too_long(name: str, settings: Settings) -> RenderError:
    return RenderError("input_too_large", f"input {name!r} is longer than the limit of "
                                          f"{settings.max_duration_s:g}s (ECG_MAX_DURATION_S)")


def probe(path: str, settings: Settings | None = None) -> ProbeResult:
    """Read a local file's streams. Raises RenderError('invalid_input') with the reason, or
    'input_too_large' for a picture over ECG_MAX_PIXELS or a duration over ECG_MAX_DURATION_S
    (both found before any frame is decoded)."""
    import av  # PyAV: probing without an ffprobe binary

    settings = settings or load_settings()
    name = path
    if not os.path.isfile(path):
        raise RenderError("invalid_input", f"input {name!r} does not exist")
    size = os.path.getsize(path)
    if size == 0:
        raise RenderError("invalid_input", f"input {name!r} is empty (0 bytes)")
    try:
        # Opening reads the streams' parameters, and for H.264 and others that means decoding
        # a few frames. max_pixels makes those decoders refuse a picture over the limit, so a
        # tiny file declaring a huge picture (a decompression bomb: 200 kB -> 100 MB a frame)
        # is never decoded here; its declared size is refused just below.
        container = av.open(path, metadata_errors="ignore", options={"max_pixels": str(settings.max_pixels)})
    except Exception as exc:  # av raises many subclasses; all mean "unreadable"
        raise RenderError("invalid_input", f"input {name!r} is not a readable video: {exc}") from exc
    try:
        if not container.streams.video:
            raise RenderError("invalid_input", f"input {name!r} has no video stream")
        if container.format.name in _IMAGE_FORMATS or container.format.name.endswith("_pipe"):
            # png_pipe, jpeg_pipe, ...: one picture, which would silently become a 1-frame clip.
            raise RenderError("invalid_input", f"input {name!r} is a still image ({container.format.name}), "
                                               "not a video")
        vs = container.streams.video[0]
        declared_w, declared_h = vs.codec_context.width or 0, vs.codec_context.height or 0
        if declared_w * declared_h > settings.max_pixels:
            raise RenderError("input_too_large", f"input {name!r} is {declared_w}x{declared_h} "
                                                 f"({declared_w * declared_h} pixels); the limit is "
                                                 f"{settings.max_pixels} pixels (ECG_MAX_PIXELS)")
        tb = vs.time_base
        if tb is None:
            raise RenderError("invalid_input", f"input {name!r}: its video stream has no time base")
        cstart = (container.start_time or 0) / 1_000_000
        times: list[int] = []
        durations: list[int] = []
        # Stop reading as soon as the frames span more than the limit: a file whose timestamps
        # run for hours is refused without demuxing (or later planning) all of it.
        max_span = settings.max_duration_s / float(tb) if tb else float("inf")
        max_frames = max(1000, int(settings.max_duration_s * MAX_SOURCE_FPS))
        lo = hi = None
        try:
            for pkt in container.demux(vs):
                ts = pkt.pts if pkt.pts is not None else pkt.dts
                if ts is None or pkt.size == 0:
                    continue
                times.append(ts)
                if pkt.duration:
                    durations.append(pkt.duration)
                lo = ts if lo is None or ts < lo else lo
                hi = ts if hi is None or ts > hi else hi
                if hi - lo > max_span:
                    raise _too_long(name, settings)
                if len(times) > max_frames:
                    raise RenderError("input_too_large", f"input {name!r} has more than {max_frames} frames "
                                                         f"({MAX_SOURCE_FPS} a second of ECG_MAX_DURATION_S)")
        except RenderError:
            raise
        except Exception as exc:
            if not times:
                raise RenderError("invalid_input", f"input {name!r} cannot be demuxed: {exc}") from exc
            log.warning("demux stopped early", extra={"input": name, "error": str(exc)})
        if not times:
            raise RenderError("invalid_input", f"input {name!r} has no video frames")
        times.sort()
        secs = [float(t * tb) for t in times]
        first = secs[0]
        rel = [s - first for s in secs]
        diffs = [b - a for a, b in zip(rel, rel[1:]) if b > a]
        declared = vs.average_rate or vs.guessed_rate
        declared = Fraction(declared) if declared else None
        if durations:
            last_dur = float(median(durations) * tb)
        elif diffs:
            last_dur = median(diffs)
        else:
            last_dur = 1 / float(declared) if declared else 0.04
        duration = rel[-1] + last_dur
        if duration > settings.max_duration_s:
            raise _too_long(name, settings)
        rate = _rate(len(rel), duration, declared)
        vfr = bool(diffs) and (max(diffs) - min(diffs)) > 0.5 / float(rate)

        # Decode the first frame: proves the stream is decodable and gives rotation.
        first_frame = None
        try:
            container.seek(0)
            for frame in container.decode(vs):
                first_frame = frame
                break
        except Exception as exc:
            raise RenderError("invalid_input", f"input {name!r}: video cannot be decoded: {exc}") from exc
        if first_frame is None:
            raise RenderError("invalid_input", f"input {name!r}: no decodable video frame")
        width, height = first_frame.width, first_frame.height
        if width * height > settings.max_pixels:  # the header said less than the picture is
            raise RenderError("input_too_large", f"input {name!r} is {width}x{height} ({width * height} pixels); "
                                                 f"the limit is {settings.max_pixels} pixels (ECG_MAX_PIXELS)")
        rot = _rotation(vs, first_frame)
        if rot in (90, 270):
            width, height = height, width

        colors = _color_tags(first_frame)
        hdr = hdr_metadata(first_frame, path, container.format.name)
        if hdr is not None and hdr.dolby_vision is not None and hdr.dolby_vision.bl_compatibility_id == 0 \
                and colors["color_trc"] not in ("smpte2084", "arib-std-b67"):
            dv = hdr.dolby_vision
            # Profile 5 and others without a standard base layer: its pictures are Dolby's own
            # IPT-PQ-c2 signal, which only a Dolby Vision decoder with the RPU shows right.
            raise RenderError("invalid_input", f"input {name!r} is Dolby Vision profile {dv.profile} without a "
                                               "base layer other players can show (compatibility id 0); only "
                                               "Dolby Vision with an HDR10, SDR or HLG base layer (profiles "
                                               "8.1, 8.2, 8.4, 9) is supported")

        audio = []
        for a in container.streams.audio:
            audio.append(
                AudioStream(
                    index=a.index,
                    codec=a.codec_context.name if a.codec_context else "unknown",
                    channels=getattr(a.codec_context, "channels", 0) or 0,
                    sample_rate=a.rate or 0,
                    start=float(a.start_time * a.time_base) - cstart if a.start_time is not None and a.time_base else 0.0,
                )
            )
        return ProbeResult(
            path=path,
            container=container.format.name,
            codec=vs.codec_context.name,
            width=width,
            height=height,
            rotation=rot,
            fps_num=rate.numerator,
            fps_den=rate.denominator,
            vfr=vfr,
            duration=duration,
            frame_count=len(rel),
            start=first - cstart,
            frame_times=rel,
            **colors,
            hdr=hdr,
            audio=audio,
            size_bytes=size,
        )
    finally:
        container.close()
