"""Walk a segment's frames in the caption page and capture only overlays that changed."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

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
    warnings = await _guard(page.load(scenario.scenario, out.width, out.height, float(out.fps)), "load")
    if start_frame > 0:
        t_a = out.frame_time(start_frame)
        s = scenario.active_start(t_a)
        if s is not None:
            first = max(0, int(math.floor((s - PREROLL_LEAD_S) * out.fps_num / out.fps_den)))
            times = [out.seek_time(n) for n in range(first, start_frame)]
            await _guard(page.preroll(times), "pre-roll")
    return warnings


async def overlay_events(
    page: CaptionPage, out: OutputFormat, start: int, end: int, margin: int
) -> AsyncIterator[OverlayEvent]:
    """Seek frames [start, end) in increasing time; capture only when the drawing changed."""
    prev: str | None = None  # the previous frame's kind
    for n in range(start, end):
        _h, box, unchanged = await _guard(page.seek(out.seek_time(n)), f"seek frame {n}")
        if unchanged and prev is not None:
            prev = "empty" if prev == "empty" else "same"
            yield OverlayEvent(n, prev)
            continue
        if box is None:
            prev = "empty"
            yield OverlayEvent(n, "empty")
            continue
        x, y, w, hgt = clip_rect(box, out, margin)
        png = await _guard(page.capture((x, y, w, hgt)), f"capture frame {n}")
        prev = "new"
        yield OverlayEvent(n, "new", png, x, y)
