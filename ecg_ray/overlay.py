"""Walk a segment's frames in the caption page and capture only overlays that changed."""

from __future__ import annotations

import asyncio
import bisect
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from .browser import CaptionPage
from .errors import RenderError
from .models import OutputFormat
from .scenario import Scenario

PAGE_TIMEOUT_S = 60.0
# Pre-roll starts this long before the earliest active cue: MotionText mounts cues ahead of
# their start (preloadMs), and a plugin may initialise then.
PREROLL_LEAD_S = 1.0


@dataclass
class OverlayEvent:
    """What the overlay is at output frame ``n``."""

    n: int
    kind: str                   # "empty" | "same" | "new"
    png: bytes = b""
    x: int = 0
    y: int = 0
    prepared: Any = None        # a Future of composite.prepare(png, x, y), started ahead (segment.py)


def clip_rect(box: tuple[float, float, float, float], out: OutputFormat, margin: int) -> tuple[int, int, int, int]:
    """Expand the drawn box by ``margin`` (shadows, glows), clamp to the frame, align to 2px."""
    bx, by, bw, bh = box
    x0 = max(0, int(math.floor(bx - margin)) // 2 * 2)
    y0 = max(0, int(math.floor(by - margin)) // 2 * 2)
    x1 = min(out.width, (int(math.ceil(bx + bw + margin)) + 1) // 2 * 2)
    y1 = min(out.height, (int(math.ceil(by + bh + margin)) + 1) // 2 * 2)
    return x0, y0, max(2, x1 - x0), max(2, y1 - y0)


async def _guard(coro, what: str):
    try:
        return await asyncio.wait_for(coro, timeout=PAGE_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise RenderError("scenario_error", f"caption page did not answer within {PAGE_TIMEOUT_S:.0f}s ({what})")


async def prepare_page(page: CaptionPage, scenario: Scenario, out: OutputFormat, start_frame: int) -> list[str]:
    """Load the scenario fresh and pre-roll plugin state up to ``start_frame`` (not captured)."""
    await page.ensure_alive()
    warnings = await _guard(page.load(scenario.scenario, out.width, out.height, float(out.fps), scenario.assets),
                            "load")
    if start_frame > 0:
        t_a = out.frame_time(start_frame)
        s = scenario.active_start(t_a)
        if s is not None:
            first = max(0, int(math.floor((s - PREROLL_LEAD_S) * out.fps_num / out.fps_den)))
            cov = covered_frames(scenario, out, first, start_frame)
            times = [out.seek_time(n) for n, c in zip(range(first, start_frame), cov) if c]
            await _guard(page.preroll(times), "pre-roll")
    return warnings


def covered_frames(scenario: Scenario, out: OutputFormat, start: int, end: int) -> list[bool]:
    """Per frame in [start, end): could any cue be drawn there? Frames outside every cue's
    range (plugin windows included) are empty without asking the browser, and are skipped
    the same way in a full pass and in a segment's pre-roll, so seek histories match."""
    merged: list[list[float]] = []
    for s, e in sorted(scenario.cue_ranges):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    starts = [m[0] for m in merged]
    cov = []
    for n in range(start, end):
        t = out.seek_time(n)
        i = bisect.bisect_right(starts, t) - 1
        cov.append(i >= 0 and t < merged[i][1])
    return cov


ADVANCE_BATCH = 64


async def overlay_events(
    page: CaptionPage, out: OutputFormat, start: int, end: int, margin: int, scenario: Scenario | None = None
) -> AsyncIterator[OverlayEvent]:
    """Seek frames [start, end) in increasing time; capture only when the drawing changed."""
    covered = covered_frames(scenario, out, start, end) if scenario is not None else [True] * (end - start)
    prev: str | None = None  # the previous frame's kind; None: the next seek must measure
    n = start
    while n < end:
        if not covered[n - start]:
            prev = None
            yield OverlayEvent(n, "empty")
            n += 1
            continue
        # A run of covered frames, seeked in one round trip up to the first change.
        stop = n
        while stop < end and stop - n < ADVANCE_BATCH and covered[stop - start]:
            stop += 1
        times = [out.seek_time(k) for k in range(n, stop)]
        i, box = await _guard(page.advance(times, force_first=prev is None), f"seek frames {n}-{stop - 1}")
        for k in range(n, n + i):
            yield OverlayEvent(k, "empty" if prev == "empty" else "same")
        if i == len(times):
            n = stop
            continue
        changed = n + i
        if box is None:
            prev = "empty"
            yield OverlayEvent(changed, "empty")
        else:
            x, y, w, hgt = clip_rect(box, out, margin)
            png = await _guard(page.capture((x, y, w, hgt)), f"capture frame {changed}")
            prev = "new"
            yield OverlayEvent(changed, "new", png, x, y)
        n = changed + 1
