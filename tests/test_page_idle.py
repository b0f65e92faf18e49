"""The caption page does no work between seeks: GSAP's ticker (a requestAnimationFrame loop,
woken whenever an animation is created) stays asleep. Awake, it had an idle page ask Chromium for
60 frames a second: 80 ms of CPU a second per warm actor, for nothing."""

from __future__ import annotations

import asyncio

from ecg_ray.capture.browser import CaptionPage
from ecg_ray.scenario.normalize import normalize

SCENARIO = {"version": "1.3", "cues": [{"start": 0, "end": 2, "text": "쉬는 페이지", "effect": "fadein"}]}

# Counts GSAP's ticks in half a second after a new tween (which wakes the ticker if anything
# can). A wake may tick once at once; an awake ticker ticks at the display's rate.
_COUNT_TICKS = """async () => {
  let ticks = 0;
  const count = () => { ticks++; };
  window.gsap.ticker.add(count);
  try {
    window.gsap.to({ v: 0 }, { v: 1, duration: 5 });
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    window.gsap.ticker.remove(count);
  }
  return ticks;
}"""


def test_no_animation_frames_between_seeks() -> None:
    sc = normalize(SCENARIO, 16 / 9)

    async def run() -> tuple[int, int, list]:
        page = CaptionPage()
        await page.start()
        try:
            fresh = await page._page.evaluate(_COUNT_TICKS)
            await page.load(sc.scenario, 640, 360, 25)
            loaded = await page._page.evaluate(_COUNT_TICKS)
            seeked = await page.seek(0.5)
            return fresh, loaded, seeked
        finally:
            await page.close()

    fresh, loaded, seeked = asyncio.run(run())
    assert fresh <= 1 and loaded <= 1, (fresh, loaded)
    assert seeked[1] is not None  # seeks still draw: the caption's box is there
