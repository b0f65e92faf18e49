"""Single frames through the video path: pre-roll, seek, capture, composite.

``render_still`` draws the frame on screen at a time, over the video's frame when an input is
given (the same decode and composite code a segment uses), transparent otherwise.
``gallery`` draws every installed plugin at five points of its animation on one sheet.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import numpy as np

from ecg_ray.capture.browser import CaptionPage
from ecg_ray.capture.overlay import overlay_events, prepare_page
from ecg_ray.config import load_settings
from ecg_ray.errors import RenderError
from ecg_ray.media import composite
from ecg_ray.media.decode import SourceFrames
from ecg_ray.media.models import OutputFormat
from ecg_ray.media.probe import probe
from ecg_ray.rendering.models import RenderOptions
from ecg_ray.rendering.plan import output_format, source_frame_map
from ecg_ray.scenario.assets import fetch_assets
from ecg_ray.scenario.model import Scenario
from ecg_ray.scenario.normalize import normalize
from ecg_ray.scenario.plugins import installed_plugins

_MATRIX = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114)}


def yuv420_to_rgb(frame: bytes | bytearray, width: int, height: int, matrix: str) -> np.ndarray:
    """Limited-range Y'CbCr 4:2:0 -> RGB (uint8, H x W x 3)."""
    buf = np.frombuffer(frame, dtype=np.uint8)
    ysz = width * height
    y = buf[:ysz].reshape(height, width).astype(np.float32)
    u = buf[ysz:ysz + ysz // 4].reshape(height // 2, width // 2).repeat(2, 0).repeat(2, 1).astype(np.float32)
    v = buf[ysz + ysz // 4:].reshape(height // 2, width // 2).repeat(2, 0).repeat(2, 1).astype(np.float32)
    kr, kb = _MATRIX[matrix]
    kg = 1 - kr - kb
    yy = (y - 16) * (255 / 219)
    cb = (u - 128) * (255 / 224)
    cr = (v - 128) * (255 / 224)
    r = yy + 2 * (1 - kr) * cr
    b = yy + 2 * (1 - kb) * cb
    g = (yy - kr * r - kb * b) / kg
    return np.clip(np.stack([r, g, b], axis=-1) + 0.5, 0, 255).astype(np.uint8)


async def _overlay_at(page: CaptionPage, sc: Scenario, out: OutputFormat, n: int, margin: int):
    await prepare_page(page, sc, out, n)
    async for ev in overlay_events(page, out, n, n + 1, margin, sc):
        return ev
    raise RenderError("internal_error", "no overlay event")  # pragma: no cover


async def render_still_async(page: CaptionPage, scenario: Any, at: float, output: str | None = None,
                             input: str | None = None, width: int | None = None, height: int | None = None,
                             fps: float = 30.0, asset_dir: str | None = None):
    """Returns the frame as an RGBA (no input) or RGB (input) array, and writes a PNG if asked.

    Define assets are fetched as a job fetches them; relative paths from ``asset_dir`` (the
    scenario file's directory), else the working directory."""
    from PIL import Image

    settings = load_settings()
    if at < 0 or not math.isfinite(at):
        raise RenderError("invalid_options", f"--at must be a time >= 0, got {at}")
    if input is not None:
        src = probe(input)
        out = output_format(src, RenderOptions(width=width, height=height), settings)
        n = min(out.frame_count - 1, int(math.floor(at * out.fps_num / out.fps_den + 1e-6)))
    else:
        w, h = (width or 1920) // 2 * 2, (height or 1080) // 2 * 2
        n = int(math.floor(at * fps + 1e-6))
        out = OutputFormat(width=w, height=h, fps_num=int(round(fps * 1000)), fps_den=1000, frame_count=n + 1)
    sc = normalize(scenario, out.width / out.height)
    sc = await asyncio.to_thread(fetch_assets, sc, settings, base_dir=asset_dir)
    ev = await _overlay_at(page, sc, out, n, settings.capture_margin_px)
    if input is not None:
        frame = bytearray(next(iter(SourceFrames(input, src, out, source_frame_map(src, out, n, n + 1), max_pixels=settings.max_pixels))))
        if ev.kind == "new":
            ov = composite.prepare(ev.png, ev.x, ev.y, out.matrix)
            if ov is not None:
                composite.blend(frame, out.width, out.height, ov)
        img = yuv420_to_rgb(frame, out.width, out.height, out.matrix)
        pil = Image.fromarray(img, "RGB")
    else:
        import io

        pil = Image.new("RGBA", (out.width, out.height), (0, 0, 0, 0))
        if ev.kind == "new":
            pil.paste(Image.open(io.BytesIO(ev.png)).convert("RGBA"), (ev.x, ev.y))
        img = np.asarray(pil)
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        pil.save(output)
    return img, sc.warnings


def render_still(scenario: Any, at: float, output: str | None = None, **kw):
    async def run():
        page = CaptionPage()
        await page.start()
        try:
            return await render_still_async(page, scenario, at, output, **kw)
        finally:
            await page.close()

    return asyncio.run(run())


GALLERY_POINTS = (0.1, 0.3, 0.5, 0.7, 0.9)


def plugin_scenario(name: str, text: str = "안녕하세요 Hello 😀") -> dict:
    """One cue over [0, 1) s whose plugin window is exactly its display time."""
    return {
        "version": "2.0", "timebase": {"unit": "seconds"}, "stage": {"baseAspect": "16:9"},
        "tracks": [{"id": "t", "type": "subtitle", "layer": 1, "defaultStyle": {
            "fontFamily": "'Noto Sans CJK KR', 'Noto Color Emoji', sans-serif", "fontWeight": 700,
            "fontSizeRel": 0.09, "color": "#ffffff", "stroke": {"widthRel": 0.002, "color": "#000000"},
            "whiteSpace": "nowrap"}}],
        "cues": [{"id": "c", "track": "t", "root": {"id": "g", "eType": "group", "children": [
            {"id": "x", "eType": "text", "text": text, "displayTime": [0, 1],
             "layout": {"position": {"x": 0.5, "y": 0.6}, "anchor": "bc"},
             "pluginChain": [{"name": name, "timeOffset": ["0%", "0%"]}]}]}}],
    }


def gallery(output: str, width: int = 480, height: int = 270) -> int:
    """Contact sheet: one row per installed plugin, columns at GALLERY_POINTS of the window."""
    from PIL import Image, ImageDraw

    names = sorted(installed_plugins())
    label_w = 150
    sheet = Image.new("RGB", (label_w + width * len(GALLERY_POINTS), height * len(names)), (40, 44, 52))
    draw = ImageDraw.Draw(sheet)

    async def run():
        page = CaptionPage()
        await page.start()
        try:
            for row, name in enumerate(names):
                sc = plugin_scenario(name)
                draw.text((8, row * height + height // 2), name, fill=(255, 255, 255))
                for col, p in enumerate(GALLERY_POINTS):
                    img, _ = await render_still_async(page, sc, p, width=width, height=height, fps=100)
                    tile = Image.new("RGB", (width, height), (70, 90 + 10 * (col % 2), 120))
                    tile.paste(Image.fromarray(img, "RGBA"), (0, 0), Image.fromarray(img, "RGBA"))
                    sheet.paste(tile, (label_w + col * width, row * height))
                    draw.text((label_w + col * width + 6, row * height + 4), f"{int(p * 100)}%", fill=(255, 255, 0))
        finally:
            await page.close()

    asyncio.run(run())
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(output)
    return len(names)
