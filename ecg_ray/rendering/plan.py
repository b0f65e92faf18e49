"""Plan a job on the output frame grid: output format, frame -> source frame map, segments."""

from __future__ import annotations

import bisect
import math
from fractions import Fraction

from ecg_ray.config import Settings
from ecg_ray.errors import RenderError
from ecg_ray.media.colors import output_colors
from ecg_ray.media.models import OutputFormat, ProbeResult
from ecg_ray.rendering.models import RenderOptions, SegmentSpec


def _even(v: float) -> int:
    return max(2, int(round(v / 2.0)) * 2)


def output_format(src: ProbeResult, opts: RenderOptions, settings: Settings) -> OutputFormat:
    """Output size and rate. Sizes are made even (yuv420p needs it); one given side keeps aspect;
    both sides are the size (``fit="exact"``) or a box the source's shape is fitted in (``"contain"``)."""
    w: float
    h: float
    if opts.width and opts.height and opts.fit == "contain":
        w, h = contain(src.width, src.height, opts.width, opts.height)
    elif opts.width and opts.height:
        w, h = opts.width, opts.height
    elif opts.width:
        w, h = opts.width, opts.width * src.height / src.width
    elif opts.height:
        w, h = opts.height * src.width / src.height, opts.height
    else:
        w, h = src.width, src.height
    # Odd source sizes round up: padding keeps every source pixel.
    w, h = (w + 1) // 2 * 2 if isinstance(w, int) else _even(w), (h + 1) // 2 * 2 if isinstance(h, int) else _even(h)
    if w * h > settings.max_pixels:
        raise RenderError("input_too_large", f"output size {w}x{h} exceeds the limit of {settings.max_pixels} pixels "
                                             "(ECG_MAX_PIXELS)")
    if opts.fps:
        rate = Fraction(opts.fps).limit_denominator(1001)
        for num, den in ((24000, 1001), (30000, 1001), (60000, 1001)):
            if abs(opts.fps - num / den) < 0.001:
                rate = Fraction(num, den)
    else:
        rate = src.fps
    if src.duration > settings.max_duration_s:
        raise RenderError(
            "input_too_large",
            f"input is {src.duration:.0f}s long; the limit is {settings.max_duration_s:.0f}s (ECG_MAX_DURATION_S)"
        )
    count = max(1, math.ceil(src.duration * rate - 1e-6))
    if opts.dynamic_range == "hdr" and src.dynamic_range != "sdr":
        # Kept: the source's transfer and its static side data (a Dolby Vision RPU is not
        # carried: the output is its HLG or HDR10 base layer).
        hdr = src.hdr.model_copy(update={"dolby_vision": None, "hdr10_plus": False}) if src.hdr else None
        if hdr is not None and hdr.mastering_display is None and hdr.content_light is None:
            hdr = None
        return OutputFormat(
            width=int(w), height=int(h), fps_num=rate.numerator, fps_den=rate.denominator, frame_count=count,
            matrix="bt2020", colorspace="bt2020nc", dynamic_range=src.dynamic_range, hdr=hdr,
        )
    matrix, csp = output_colors(src)
    return OutputFormat(
        width=int(w), height=int(h), fps_num=rate.numerator, fps_den=rate.denominator, frame_count=count,
        matrix=matrix, colorspace=csp,
    )


def contain(src_w: int, src_h: int, box_w: int, box_h: int) -> tuple[float, float]:
    """The largest size of the source's aspect inside the box, the box first turned to the
    source's orientation: a box says how large ("1080p"), the source says which way up. The
    platform's backend asks 1920x1080 of every video, phones' portrait ones included."""
    if (src_w < src_h) != (box_w < box_h) and src_w != src_h:
        box_w, box_h = box_h, box_w
    scale = min(box_w / src_w, box_h / src_h)
    w, h = src_w * scale, src_h * scale
    # Within a pixel of the box: the box itself (no 1919x1080 from rounding).
    return (box_w if abs(w - box_w) < 1 else w), (box_h if abs(h - box_h) < 1 else h)


def source_frame_map(src: ProbeResult, out: OutputFormat, start: int = 0, end: int | None = None) -> list[int]:
    """For each output frame n in [start, end) (default: all), the source frame on screen at
    time n/fps (sample and hold). A segment asks for its own range only.

    With equal rates and constant frame spacing this is the identity: every source frame
    exactly once, in order.
    """
    times = src.frame_times
    # Containers round timestamps (often to 1 ms): a frame due at t may be stamped a little
    # later. A quarter frame of tolerance absorbs that without ever picking a frame early.
    tol = 0.25 / max(float(src.fps), float(out.fps))
    out_map = []
    for n in range(start, out.frame_count if end is None else end):
        t = out.frame_time(n) + tol
        i = bisect.bisect_right(times, t) - 1
        out_map.append(min(max(i, 0), len(times) - 1))
    return out_map


# Counts above this are rounded down to a multiple of it: a node of the lent GPU machines
# holds 8 actors (16 cores), and 15 segments on 8 actors take two rounds with one actor idle in
# the second (makespan 16/15 of the balanced one), where 8 or 16 take whole rounds.
COUNT_STEP = 8


def segment_count(frames: int, fps: float, settings: Settings, requested: int | None) -> int:
    """How many segments a job is cut into: a pure function of its length and the settings,
    never of the cluster's load or size, so that the same video is always cut at the same frames
    (the segment cache reuses segments of an earlier job only where they match; the preview's
    prefix grows segment by segment). ECG_SEGMENTS_PER_JOB segments (none shorter than
    ECG_MIN_SEGMENT_SECONDS), more of them where those would be longer than
    ECG_MAX_SEGMENT_SECONDS (whole multiples: rounds of segments stay whole), at most
    ECG_MAX_SEGMENTS. ``requested`` (options.segments) is taken as is."""
    if requested:
        return max(1, min(requested, frames))
    seconds = frames / fps
    want = max(1, settings.segments_per_job)
    if settings.max_segment_seconds > 0 and seconds / want > settings.max_segment_seconds:
        want *= math.ceil(seconds / want / settings.max_segment_seconds)
    by_length = max(1, int(seconds / settings.min_segment_seconds + 1e-9)) if settings.min_segment_seconds > 0 else frames
    count = max(1, min(want, by_length, settings.max_segments, frames))
    if count > COUNT_STEP:
        count -= count % COUNT_STEP
    return count


def plan_segments(job_id: str, frames: int, count: int) -> list[SegmentSpec]:
    """Split [0, frames) into ``count`` contiguous, nearly equal ranges."""
    count = max(1, min(count, frames))
    bounds = [frames * i // count for i in range(count + 1)]
    return [
        SegmentSpec(job_id=job_id, index=i, start_frame=bounds[i], end_frame=bounds[i + 1])
        for i in range(count)
    ]
