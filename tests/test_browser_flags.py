"""ECG_CHROMIUM_ARGS: an operator's extra Chromium flags reach the browser, and --enable-gpu
really turns GPU compositing on (here through SwiftShader, the GPU this machine has), drawing the
same captions as the software default."""

from __future__ import annotations

import asyncio
import io

import numpy as np
from PIL import Image

from ecg_ray.capture.browser import CaptionPage, chromium_args
from ecg_ray.capture.overlay import overlay_events, prepare_page
from ecg_ray.media.models import OutputFormat
from ecg_ray.scenario.normalize import normalize

SCENARIO = {"version": "1.3", "cues": [{"start": 0, "end": 2, "text": "안녕하세요 GPU"}]}


def test_flags_compose() -> None:
    assert "--disable-gpu" in chromium_args("")
    args = chromium_args("--enable-gpu --use-angle=swiftshader")
    assert "--disable-gpu" not in args and "--enable-gpu" not in args and "--use-angle=swiftshader" in args
    args = chromium_args("--foo")
    assert "--disable-gpu" in args and args.index("--foo") > args.index("--disable-gpu")  # ours first, then theirs


def _capture(flags: str, monkeypatch) -> tuple[dict, list[tuple[int, bytes, int, int]]]:
    monkeypatch.setenv("ECG_CHROMIUM_ARGS", flags)
    out = OutputFormat(width=640, height=360, fps_num=25, fps_den=1, frame_count=20)
    sc = normalize(SCENARIO, 16 / 9)

    async def run():
        page = CaptionPage()
        await page.start()
        try:
            status = await page.gpu_status()
            await prepare_page(page, sc, out, 0)
            got = [(ev.n, ev.png, ev.x, ev.y) async for ev in overlay_events(page, out, 0, 20, 12, sc)
                   if ev.kind == "new"]
            return status, got
        finally:
            await page.close()

    return asyncio.run(run())


def test_gpu_flag_enables_gpu_compositing_and_draws_the_same(monkeypatch) -> None:
    soft_status, soft = _capture("", monkeypatch)
    gpu_status, gpu = _capture("--enable-gpu --use-angle=swiftshader", monkeypatch)
    assert soft_status["gpu_compositing"].startswith("disabled")
    assert gpu_status["gpu_compositing"] == "enabled", gpu_status
    assert soft and [(n, x, y) for n, _, x, y in soft] == [(n, x, y) for n, _, x, y in gpu]
    for (_, a, _, _), (_, b, _, _) in zip(soft, gpu):
        pa = np.asarray(Image.open(io.BytesIO(a)).convert("RGBA"), dtype=np.int16)
        pb = np.asarray(Image.open(io.BytesIO(b)).convert("RGBA"), dtype=np.int16)
        assert pa.shape == pb.shape
        assert pa[..., 3].max() == 255  # the caption is drawn, not an empty picture
        assert np.abs(pa - pb).mean() < 2.0  # antialiasing may differ by a little, nothing more
