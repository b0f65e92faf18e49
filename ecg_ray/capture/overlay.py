"""Walk a segment's frames in the caption page and capture only overlays that changed."""

from __future__ import annotations

import asyncio
import bisect
import collections
import math
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ecg_ray.capture.browser import SHEET_MAX_ROWS, CaptionPage
from ecg_ray.errors import RenderError
from ecg_ray.media import composite
from ecg_ray.media.models import OutputFormat
from ecg_ray.scenario.model import Scenario

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


async def prepare_page(page: CaptionPage, scenario: Scenario, out: OutputFormat, start_frame: int,
                       lane_starts: list[int] | None = None) -> list[str]:
    """Load the scenario fresh and pre-roll plugin state up to ``start_frame`` (not captured).

    ``lane_starts``: the page holds one lane per entry, each pre-rolled up to its own start
    (``lane_events``); by default one lane, starting at ``start_frame``."""
    starts = lane_starts or [start_frame]
    await page.ensure_alive()
    warnings = await _guard(page.load(scenario.scenario, out.width, out.height, float(out.fps), scenario.assets,
                                      lanes=len(starts)), "load")
    for lane, start in enumerate(starts):
        times = preroll_times(scenario, out, start)
        if times:
            await _guard(page.preroll(times, lane), "pre-roll")
    return warnings


def preroll_times(scenario: Scenario, out: OutputFormat, start_frame: int) -> list[float]:
    """The seek times that settle plugin state before ``start_frame``: from the earliest cue
    active there (less PREROLL_LEAD_S), the frames some cue covers."""
    if start_frame <= 0:
        return []
    s = scenario.active_start(out.frame_time(start_frame))
    if s is None:
        return []
    first = max(0, int(math.floor((s - PREROLL_LEAD_S) * out.fps_num / out.fps_den)))
    cov = covered_frames(scenario, out, first, start_frame)
    return [out.seek_time(n) for n, c in zip(range(first, start_frame), cov) if c]


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


def _covered_run(covered: list[bool], base: int, n: int, end: int) -> int:
    """The end of the run of covered frames from ``n`` (at most ADVANCE_BATCH, before ``end``);
    ``covered[k - base]`` tells frame k."""
    stop = n
    while stop < end and stop - n < ADVANCE_BATCH and covered[stop - base]:
        stop += 1
    return stop


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
        stop = _covered_run(covered, start, n, end)
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


# ---------------------------------------------------------------------------------------------
# Several lanes, one capture. A capture has a large fixed cost (it forces a frame through
# Chromium's renderer, display compositor and browser, then a PNG encode and a round trip):
# on 2 cores at 720p about 30 of its 45 ms of CPU whatever is drawn. So a segment's frames are
# split into runs, one per lane of the page (its own MotionText renderer, pre-rolled at its
# run's start like a segment of its own), and the lanes advance together: each step seeks every
# lane to its next change and captures all the changed boxes in one screenshot, stacked in a
# sheet. The events still come out in frame order: those of the lanes ahead are held (the
# pictures already converted) until the consumer reaches them, within ``hold_bytes``; past it
# only the first lane walks on, one capture at a time.

MIN_LANE_FRAMES = 24


def lane_ranges(start: int, end: int, lanes: int, min_frames: int = MIN_LANE_FRAMES) -> list[tuple[int, int]]:
    """[start, end) split into at most ``lanes`` contiguous runs of at least ``min_frames``
    (one run when the range is shorter)."""
    n = max(1, min(lanes, (end - start) // max(1, min_frames)))
    edges = [start + (end - start) * i // n for i in range(n + 1)]
    return [(edges[i], edges[i + 1]) for i in range(n)]


@dataclass
class _Lane:
    index: int
    end: int
    n: int                          # the next frame to walk
    prev: str | None = None         # the previous frame's kind; None: the next seek must measure
    held: collections.deque[OverlayEvent] = field(default_factory=collections.deque)


def _cut_sheet(png: bytes, cuts: list[tuple[Future, int, int, int, int, int]], prepare: Callable, matrix: str) -> None:
    """Decode a sheet once and prepare each lane's rectangle of it: cuts are (future, top, w, h,
    x, y): rows [top, top + h) and columns [0, w) of the sheet, captured at (x, y) of the frame."""
    try:
        rgba = composite.decode_png(png)
    except BaseException as exc:  # noqa: BLE001 - handed to each waiting consumer
        for f, *_ in cuts:
            f.set_exception(exc)
        return
    for f, top, w, h, x, y in cuts:
        try:
            f.set_result(prepare(rgba[top:top + h, :w], x, y, matrix))
        except BaseException as exc:  # noqa: BLE001
            f.set_exception(exc)


async def lane_events(
    page: CaptionPage, out: OutputFormat, ranges: list[tuple[int, int]], margin: int, scenario: Scenario,
    prepare: Callable, pool: Executor, hold_bytes: int, counts: dict[str, int] | None = None,
) -> AsyncIterator[OverlayEvent]:
    """The overlays of frames [ranges[0][0], ranges[-1][1]) in frame order, walked as one lane
    per range (the page loaded with ``len(ranges)`` lanes, each pre-rolled at its start:
    ``prepare_page(..., lane_starts=...)``). Every "new" event comes with ``prepared``: a future
    of ``prepare(rgba, x, y, out.caption_colors)``, started in ``pool`` as soon as it is captured.
    ``counts["screenshots"]`` (when given) counts the screenshots taken."""
    start = ranges[0][0]
    covered = covered_frames(scenario, out, start, ranges[-1][1])
    lanes = [_Lane(i, b, a) for i, (a, b) in enumerate(ranges)]
    # Pictures captured but not yet handed on, with their size until converted: the clip
    # rectangle as yuva420p (the converted picture, trimmed to what shows, is about a third).
    pending: dict[int, tuple[OverlayEvent, int]] = {}
    head = 0
    while head < len(lanes):
        lane = lanes[head]
        while lane.held:
            ev = lane.held.popleft()
            pending.pop(id(ev), None)
            yield ev
        if lane.n >= lane.end:
            head += 1
            continue
        held = sum(_held_size(ev, guess) for ev, guess in pending.values())
        active = [lane] + [ln for ln in lanes[head + 1:] if ln.n < ln.end and held < hold_bytes]
        specs = []
        for ln in active:
            while ln.n < ln.end and not covered[ln.n - start]:  # no cue there: empty, no browser
                ln.held.append(OverlayEvent(ln.n, "empty"))
                ln.prev = None
                ln.n += 1
            stop = _covered_run(covered, start, ln.n, ln.end)
            if stop > ln.n:
                specs.append((ln, [out.seek_time(k) for k in range(ln.n, stop)], ln.prev is None))
        if not specs:
            continue
        got = await _guard(page.advance_lanes([(ln.index, times, force) for ln, times, force in specs]),
                           f"seek {len(specs)} lanes from frame {specs[0][0].n}")
        shots: list[tuple[OverlayEvent, tuple[int, int, int, int], int]] = []
        for (ln, times, _force), (i, box) in zip(specs, got):
            for k in range(ln.n, ln.n + i):
                ln.held.append(OverlayEvent(k, "empty" if ln.prev == "empty" else "same"))
            if i == len(times):
                ln.n += i
                continue
            changed = ln.n + i
            if box is None:
                ln.prev = "empty"
                ln.held.append(OverlayEvent(changed, "empty"))
            else:
                rect = clip_rect(box, out, margin)
                ev = OverlayEvent(changed, "new", b"", rect[0], rect[1])
                ln.prev = "new"
                ln.held.append(ev)
                shots.append((ev, rect, ln.index))
                pending[id(ev)] = (ev, rect[2] * rect[3] * 5 // 2)
            ln.n = changed + 1
        sheets = await _capture_sheets(page, shots, prepare, pool, out.caption_colors)
        if counts is not None:
            counts["screenshots"] = counts.get("screenshots", 0) + sheets


def walk_events(
    page: CaptionPage, out: OutputFormat, ranges: list[tuple[int, int]], margin: int, scenario: Scenario,
    prepare: Callable, pool: Executor, hold_bytes: int, counts: dict[str, int] | None = None,
) -> AsyncIterator[OverlayEvent]:
    """A segment's overlays, from lane_ranges: its lanes walked together (lane_events, which
    counts screenshots in ``counts``), or its one run alone (overlay_events: one screenshot per
    capture, converted by the caller)."""
    if len(ranges) > 1:
        return lane_events(page, out, ranges, margin, scenario, prepare, pool, hold_bytes, counts)
    (start, end), = ranges
    return overlay_events(page, out, start, end, margin, scenario)


def submit_sheet(pool: Executor, png: bytes, cuts: list[tuple[Future, int, int, int, int, int]],
                 prepare: Callable, matrix: str) -> Future:
    """Decode and cut a sheet in ``pool`` (``_cut_sheet``). A sheet dropped with the pool (a
    cancelled segment) cancels its pictures' futures: a writer thread waiting on one would
    otherwise wait for ever."""
    task = pool.submit(_cut_sheet, png, cuts, prepare, matrix)

    def dropped(t: Future) -> None:
        if t.cancelled():
            for f, *_ in cuts:
                f.cancel()

    task.add_done_callback(dropped)
    return task


def _held_size(ev: OverlayEvent, guess: int) -> int:
    """Bytes a held event's converted picture takes (``guess`` until it is converted)."""
    f = ev.prepared
    if f is None or not f.done() or f.exception() is not None:
        return guess
    ov = f.result()
    return 0 if ov is None else sum(v.nbytes for v in vars(ov).values() if isinstance(v, np.ndarray))


async def _capture_sheets(page: CaptionPage, shots: list[tuple[OverlayEvent, tuple[int, int, int, int], int]],
                          prepare: Callable, pool: Executor, matrix: str) -> int:
    """Capture the shots' rectangles stacked in as few sheets as fit SHEET_MAX_ROWS; returns
    how many screenshots that took."""
    i = sheets = 0
    while i < len(shots):
        places: list[tuple[int, int, int, int, int, int]] = []
        cuts: list[tuple] = []
        top = width = 0
        while i < len(shots):
            ev, (x, y, w, h), lane = shots[i]
            if places and top + h > SHEET_MAX_ROWS:
                break
            places.append((lane, x, y, w, h, top))
            ev.prepared = Future()
            cuts.append((ev.prepared, top, w, h, x, y))
            top += h
            width = max(width, w)
            i += 1
        await _guard(page.arrange(places), "arrange lanes")
        png = await _guard(page.capture((0, 0, width, top)), f"capture {len(places)} lanes")
        submit_sheet(pool, png, cuts, prepare, matrix)
        sheets += 1
    return sheets
