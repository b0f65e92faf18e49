"""Several lanes walked at once with their captions captured in one screenshot
(overlay.lane_events) against one lane walked frame by frame (overlay_events): the same
overlay on every frame, in frame order, with fewer screenshots (real Chromium, real FFmpeg)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ecg_ray import probe
from ecg_ray.capture.browser import CaptionPage
from ecg_ray.capture.overlay import lane_events, lane_ranges, overlay_events, prepare_page
from ecg_ray.config import load_settings
from ecg_ray.media.composite import to_yuva
from ecg_ray.media.models import EncoderSettings, OutputFormat
from ecg_ray.rendering.models import RenderOptions, SegmentSpec
from ecg_ray.rendering.plan import output_format
from ecg_ray.rendering.segment import JobSpec, render_segment
from ecg_ray.scenario.normalize import normalize
from tests.frames import caption_mask, frame_numbers, frames_for

OUT = OutputFormat(width=640, height=360, fps_num=25, fps_den=1, frame_count=150)


def _cue(i: int, start: float, end: float, text: str, y: float, chain: list) -> dict:
    return {"id": f"c{i}", "track": "captions", "root": {"id": f"g{i}", "eType": "group", "children": [
        {"id": f"t{i}", "eType": "text", "text": text, "displayTime": [start, end],
         "layout": {"position": {"x": 0.5, "y": y}, "anchor": "bc"}, "pluginChain": chain}]}}


# Animated and static cues, a gap no cue covers, one cue up the frame, two cues at once.
SCENARIO = {
    "version": "2.0", "timebase": {"unit": "seconds"}, "stage": {"baseAspect": "16:9"},
    "tracks": [{"id": "captions", "type": "subtitle", "layer": 1, "defaultStyle": {
        "fontFamily": "'Noto Sans CJK KR', sans-serif", "fontWeight": 700, "fontSizeRel": 0.07,
        "color": "#ffffff", "textShadow": "0 0 3px rgba(0,0,0,0.9)", "whiteSpace": "nowrap"}}],
    "cues": [
        _cue(0, 0.2, 1.9, "안녕하세요 lanes", 0.9, [{"name": "fadein", "timeOffset": ["0%", "-40%"]}]),
        _cue(1, 2.6, 4.1, "slide · 슬라이드", 0.9, [{"name": "slideup", "timeOffset": ["0%", "-50%"]},
                                                   {"name": "pulse", "timeOffset": ["80%", "0%"]}]),
        _cue(2, 3.0, 5.5, "위쪽 top line", 0.3, []),
        _cue(3, 4.6, 6.0, "typewriter 타자기", 0.9, [{"name": "typewriter", "timeOffset": ["0%", "-30%"]}]),
    ],
}


def test_lane_ranges():
    assert lane_ranges(0, 100, 4) == [(0, 25), (25, 50), (50, 75), (75, 100)]
    assert lane_ranges(10, 40, 8) == [(10, 40)]           # too short for two runs of 24 frames
    assert lane_ranges(0, 50, 8) == [(0, 25), (25, 50)]
    assert lane_ranges(0, 1000, 1) == [(0, 1000)]
    for lanes in (2, 3, 7, 16):
        rs = lane_ranges(37, 1037, lanes)
        assert rs[0][0] == 37 and rs[-1][1] == 1037 and len(rs) == lanes
        assert all(a < b for a, b in rs) and all(rs[i][1] == rs[i + 1][0] for i in range(len(rs) - 1))


def _resolved(events: dict) -> list:
    """Per frame, the overlay shown (None: nothing), from the events' kinds."""
    cur, out = None, []
    for n in sorted(events):
        kind, ov = events[n]
        if kind == "new":
            cur = ov
        elif kind == "empty":
            cur = None
        out.append(cur)
    return out


async def _walk(lanes: int, hold_bytes: int):
    sc = normalize(SCENARIO, 16 / 9)
    page = CaptionPage()
    await page.start()
    shots = 0
    capture = page.capture

    async def counting(clip):
        nonlocal shots
        shots += 1
        return await capture(clip)

    page.capture = counting
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        ranges = lane_ranges(0, OUT.frame_count, lanes)
        await prepare_page(page, sc, OUT, 0, [a for a, _ in ranges])
        if lanes == 1:
            gen = overlay_events(page, OUT, 0, OUT.frame_count, 24, sc)
        else:
            gen = lane_events(page, OUT, ranges, 24, sc, to_yuva, pool, hold_bytes)
        events, order = {}, []
        async for ev in gen:
            order.append(ev.n)
            ov = None
            if ev.kind == "new":
                ov = ev.prepared.result() if ev.prepared is not None else to_yuva(ev.png, ev.x, ev.y, OUT.matrix)
            events[ev.n] = (ev.kind, ov)
        return order, events, shots
    finally:
        pool.shutdown()
        await page.close()


def _close(a, b) -> bool:
    """The same overlay up to rasterisation noise: Chromium may place a glyph edge of scaled
    text a pixel apart when the same drawing sits elsewhere in the page (seen on 2 of 1500
    frames of the benchmark)."""
    if a is None or b is None:
        return a is None and b is None
    if max(abs(a.x - b.x), abs(a.y - b.y), abs(a.w - b.w), abs(a.h - b.h)) > 2:
        return False
    h, w = min(a.h, b.h), min(a.w, b.w)
    da = np.abs(a.ap[:h, :w].astype(np.int16) - b.ap[:h, :w])
    return float(da.mean()) < 1.0 and float((da > 64).mean()) < 0.01


@pytest.mark.parametrize("hold_bytes", [64 << 20, 0])
def test_lanes_give_the_same_overlays_with_fewer_screenshots(hold_bytes):
    order1, ev1, shots1 = asyncio.run(_walk(1, hold_bytes))
    order4, ev4, shots4 = asyncio.run(_walk(4, hold_bytes))
    assert order1 == order4 == list(range(OUT.frame_count))  # every frame once, in order
    one, four = _resolved(ev1), _resolved(ev4)
    shown = [n for n, ov in enumerate(one) if ov is not None]
    assert shown and len(shown) < OUT.frame_count  # the gaps are empty, the cues drawn
    bad = [n for n in range(OUT.frame_count) if not _close(one[n], four[n])]
    assert bad == []
    captured4 = sum(1 for k, _ in ev4.values() if k == "new")
    assert shots1 == sum(1 for k, _ in ev1.values() if k == "new")
    if hold_bytes:
        # Lanes share screenshots (each lane's first frame is captured once more than a single
        # walk would).
        assert shots4 < captured4 and shots4 < shots1
    else:
        # Nothing may be held: the lanes ahead never walk, the first lane walks everything.
        assert shots4 == captured4


ENC = EncoderSettings(codec="libx264", quality=90, preset="ultrafast")
SIMPLE = {"version": "1.3", "cues": [
    {"start": 0.4, "end": 1.6, "text": "안녕하세요 lanes"},
    {"start": 2.2, "end": 3.4, "text": "second line"},
]}


def test_segment_with_lanes_keeps_every_frame_and_caption(numbered, tmp_path):
    """A whole segment through lanes (burn path): every source frame once, in order, and the
    captions on exactly their frames, as with one lane."""
    info = probe(str(numbered))
    out = output_format(info, RenderOptions(), load_settings())

    async def run(lanes: int, path):
        page = CaptionPage()
        await page.start()
        try:
            job = JobSpec(job_id="lanes", probe=info, out=out, encoder=ENC, capture_lanes=lanes,
                          scenario=normalize(SIMPLE, out.width / out.height))
            return await render_segment(page, job, SegmentSpec(job_id="lanes", index=0, start_frame=0, end_frame=100),
                                        str(numbered), str(path), threading.Event())
        finally:
            await page.close()

    r = asyncio.run(run(4, tmp_path / "lanes.mp4"))
    assert r.frames == 100 and r.captured >= 2
    assert 1 <= r.screenshots < r.captured  # the lanes' captions shared screenshots
    assert frame_numbers(tmp_path / "lanes.mp4") == list(range(100))
    want = frames_for(0.4, 1.6, 25, 100) | frames_for(2.2, 3.4, 25, 100)
    mask = caption_mask(tmp_path / "lanes.mp4", numbered)
    assert [n for n, m in enumerate(mask) if m] == sorted(want)


def test_a_browser_that_hangs_mid_lanes_is_killed(monkeypatch):
    """SIGSTOP Chromium while lanes are walked: the page call times out, the browser is killed
    (nothing else resumes it) and BrowserHung tells the actor to render the segment again."""
    import os
    import signal

    import psutil

    from ecg_ray.capture import browser

    monkeypatch.setattr(browser, "PAGE_CALL_TIMEOUT_S", 3.0)

    async def run():
        sc = normalize(SCENARIO, 16 / 9)
        page = CaptionPage()
        await page.start()
        pool = ThreadPoolExecutor(max_workers=2)
        pid = page.pid
        try:
            ranges = lane_ranges(0, OUT.frame_count, 4)
            await prepare_page(page, sc, OUT, 0, [a for a, _ in ranges])
            n = 0
            with pytest.raises(browser.BrowserHung):
                async for _ev in lane_events(page, OUT, ranges, 24, sc, to_yuva, pool, 64 << 20):
                    n += 1
                    if n == 10:
                        os.kill(pid, signal.SIGSTOP)
            return pid
        finally:
            pool.shutdown()
            await page.close()

    pid = asyncio.run(run())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_dropped_sheet_cancels_its_pictures():
    """A cancelled segment shuts its conversion pool down with sheets still queued: their
    pictures' futures end cancelled (a writer waiting on one gets CancelledError), not pending."""
    from concurrent.futures import CancelledError, Future

    from ecg_ray.capture.overlay import submit_sheet

    pool = ThreadPoolExecutor(max_workers=1)
    gate = threading.Event()
    pool.submit(gate.wait)  # the only worker is busy: the sheet stays queued
    pictures = [Future(), Future()]
    submit_sheet(pool, b"not even a png", [(pictures[0], 0, 2, 2, 0, 0), (pictures[1], 2, 2, 2, 0, 0)],
                 to_yuva, "bt709")
    pool.shutdown(wait=False, cancel_futures=True)
    gate.set()
    for f in pictures:
        with pytest.raises(CancelledError):
            f.result(timeout=5)
    pool.shutdown(wait=True)
