"""Still frames and determinism: a frame is the same image whether it is reached in one pass,
as the first frame of a segment after pre-roll, or in another process."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ecg_ray.capture.browser import CaptionPage
from ecg_ray.capture.overlay import overlay_events, prepare_page
from ecg_ray.media.models import OutputFormat
from ecg_ray.media.testclip import read_frame_number
from ecg_ray.rendering.still import gallery, plugin_scenario, render_still
from ecg_ray.scenario.normalize import normalize
from ecg_ray.scenario.plugins import installed_plugins

SIMPLE = {"version": "1.3", "cues": [{"start": 0.5, "end": 2.5, "text": "정지 화면 Still", "effect": "fadein"}]}


def test_still_without_input_is_transparent_around_the_caption(tmp_path):
    img, warnings = render_still(SIMPLE, 1.0, str(tmp_path / "s.png"), width=640, height=360)
    assert warnings == []
    assert img.shape == (360, 640, 4)
    assert img[0, 0, 3] == 0 and img[-1, -1, 3] == 0
    assert (img[200:, :, 3] > 0).sum() > 500
    assert Image.open(tmp_path / "s.png").mode == "RGBA"
    after, _ = render_still(SIMPLE, 2.5, None, width=640, height=360)  # half-open: gone at the end
    assert after[..., 3].max() == 0


def test_still_over_video_frame(numbered, tmp_path):
    img, _ = render_still(SIMPLE, 1.0, str(tmp_path / "v.png"), input=str(numbered))
    assert img.shape == (240, 320, 3)
    luma = (0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]).astype(np.uint8)
    assert read_frame_number(luma) == 25


PROBE_TIMES = (0.3, 0.62)


@pytest.fixture(scope="module")
def pass_vs_preroll() -> dict[tuple[str, float], tuple]:
    """For every plugin and time: the overlay reached by a full pass from 0, and the overlay
    reached by pre-roll as a segment's first frame (one browser for all)."""
    fps = 50
    results = {}

    async def run():
        page = CaptionPage()
        await page.start()
        try:
            for name in sorted(installed_plugins()):
                sc = normalize(plugin_scenario(name), 16 / 9)
                for t in PROBE_TIMES:
                    n = int(round(t * fps))
                    out = OutputFormat(width=480, height=270, fps_num=fps, fps_den=1, frame_count=n + 1)
                    await prepare_page(page, sc, out, 0)
                    last_new = None
                    async for ev in overlay_events(page, out, 0, n + 1, 24, sc):
                        if ev.kind == "new":
                            last_new = ev
                        elif ev.kind == "empty":
                            last_new = None
                    await prepare_page(page, sc, out, n)
                    first = None
                    async for ev in overlay_events(page, out, n, n + 1, 24, sc):
                        first = ev
                    results[(name, t)] = (last_new, first)
        finally:
            await page.close()

    asyncio.run(run())
    return results


def _rgba(ev) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(ev.png)).convert("RGBA"))


@pytest.mark.parametrize("name", sorted(installed_plugins()))
def test_every_plugin_same_frame_in_one_pass_and_after_preroll(pass_vs_preroll, name):
    for t in PROBE_TIMES:
        a, b = pass_vs_preroll[(name, t)]
        assert a is not None and b is not None and b.kind == "new", (name, t)
        assert (a.x, a.y) == (b.x, b.y)
        assert np.array_equal(_rgba(a), _rgba(b)), f"{name} at {t}s differs"


def test_same_still_in_another_process(tmp_path):
    sc = tmp_path / "sc.json"
    import json

    sc.write_text(json.dumps(plugin_scenario("typewriter")))
    here, _ = render_still(plugin_scenario("typewriter"), 0.55, None, width=480, height=270)
    out = tmp_path / "other.png"
    r = subprocess.run([sys.executable, "-m", "ecg_ray", "still", str(sc), "--at", "0.55", "--width", "480",
                        "--height", "270", "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert np.array_equal(here, np.asarray(Image.open(out).convert("RGBA")))


def test_gallery_draws_every_plugin(tmp_path):
    out = tmp_path / "sheet.png"
    n = gallery(str(out), width=160, height=90)
    assert n == len(installed_plugins()) >= 18
    sheet = np.asarray(Image.open(out).convert("RGB"))
    assert sheet.shape == (90 * n, 150 + 160 * 5, 3)
