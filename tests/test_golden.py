"""Golden images: every plugin at three points of its animation, so a change of look is caught.

Regenerate (after an intended change of look) with:
    ECG_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/test_golden.py
and look at the new PNGs before committing them.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ecg_ray.capture.browser import CaptionPage
from ecg_ray.rendering.still import plugin_scenario, render_still_async
from ecg_ray.scenario.plugins import installed_plugins

GOLDEN = Path(__file__).parent / "golden"
POINTS = (0.2, 0.5, 0.8)
SIZE = (320, 180)
UPDATE = os.environ.get("ECG_UPDATE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, float], np.ndarray]:
    out = {}

    async def run():
        page = CaptionPage()
        await page.start()
        try:
            for name in sorted(installed_plugins()):
                for p in POINTS:
                    img, _ = await render_still_async(page, plugin_scenario(name), p, width=SIZE[0],
                                                      height=SIZE[1], fps=100)
                    out[(name, p)] = img
        finally:
            await page.close()

    asyncio.run(run())
    return out


@pytest.mark.parametrize("name", sorted(installed_plugins()))
def test_plugin_looks_as_recorded(rendered, name):
    for p in POINTS:
        path = GOLDEN / f"{name}-{int(p * 100):02d}.png"
        img = rendered[(name, p)]
        if UPDATE:
            Image.fromarray(img, "RGBA").save(path, optimize=True)
            continue
        assert path.exists(), f"no golden image {path.name}: run with ECG_UPDATE_GOLDEN=1 and review it"
        want = np.asarray(Image.open(path).convert("RGBA")).astype(np.int16)
        got = img.astype(np.int16)
        assert got.shape == want.shape
        diff = np.abs(got - want)
        # Small tolerance for anti-aliasing; a moved, resized or recoloured caption fails.
        assert diff.mean() < 1.0 and (diff.max(axis=-1) > 48).mean() < 0.002, \
            f"{name} at {p:.0%}: mean diff {diff.mean():.2f}, {(diff.max(axis=-1) > 48).mean():.4f} of pixels off"
        assert img[..., 3].max() > 0 or want[..., 3].max() == 0
