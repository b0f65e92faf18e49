"""Alpha-blend a captured caption overlay (straight-alpha RGBA PNG) onto a yuv420p frame.

Blending in Y'CbCr is the same as blending in R'G'B' (the conversion is affine), which is
what the browser itself does. Only the overlay's clip rectangle is touched.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

# (Kr, Kb) of the two matrices we write.
_MATRICES = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114)}


@dataclass
class Overlay:
    x: int
    y: int
    w: int
    h: int
    a: np.ndarray    # luma alpha, uint16 0..255, (h, w)
    yp: np.ndarray   # premultiplied luma (Y * a), uint32
    ca: np.ndarray   # chroma alpha (2x2 mean), uint16, (h/2, w/2)
    up: np.ndarray   # premultiplied Cb, uint32
    vp: np.ndarray   # premultiplied Cr, uint32


def prepare(png: bytes, x: int, y: int, matrix: str = "bt709") -> Overlay | None:
    """Decode a PNG captured at (x, y) (both even) into blend-ready planes; None if empty."""
    from PIL import Image

    img = Image.open(io.BytesIO(png))
    img = img.convert("RGBA")
    rgba = np.asarray(img)
    h, w = rgba.shape[:2]
    # Even size so that the chroma planes line up (x, y are even already).
    if h % 2 or w % 2:
        rgba = np.pad(rgba, ((0, h % 2), (0, w % 2), (0, 0)))
        h, w = rgba.shape[:2]
    alpha = rgba[..., 3].astype(np.uint16)
    if not alpha.any():
        return None
    kr, kb = _MATRICES[matrix]
    kg = 1.0 - kr - kb
    rgb = rgba[..., :3].astype(np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    yy = 16.0 + (kr * r + kg * g + kb * b) * (219.0 / 255.0)
    cb = 128.0 + (b - (kr * r + kg * g + kb * b)) / (2 * (1 - kb)) * (224.0 / 255.0)
    cr = 128.0 + (r - (kr * r + kg * g + kb * b)) / (2 * (1 - kr)) * (224.0 / 255.0)
    af = alpha.astype(np.float32)

    def pool(m: np.ndarray) -> np.ndarray:
        return (m[0::2, 0::2] + m[1::2, 0::2] + m[0::2, 1::2] + m[1::2, 1::2]) * 0.25

    ca = pool(af)
    return Overlay(
        x=x, y=y, w=w, h=h,
        a=alpha,
        yp=np.rint(yy * af).astype(np.uint32),
        ca=np.rint(ca).astype(np.uint16),
        up=np.rint(pool(cb * af)).astype(np.uint32),
        vp=np.rint(pool(cr * af)).astype(np.uint32),
    )


def blend(frame: bytearray, width: int, height: int, ov: Overlay) -> None:
    """Blend ``ov`` into ``frame`` (yuv420p, in place), clipped to the frame."""
    x0, y0 = max(0, ov.x), max(0, ov.y)
    x1, y1 = min(width, ov.x + ov.w), min(height, ov.y + ov.h)
    if x1 <= x0 or y1 <= y0:
        return
    ox, oy = x0 - ov.x, y0 - ov.y
    buf = np.frombuffer(frame, dtype=np.uint8)
    ysz = width * height
    Y = buf[:ysz].reshape(height, width)
    U = buf[ysz:ysz + ysz // 4].reshape(height // 2, width // 2)
    V = buf[ysz + ysz // 4:].reshape(height // 2, width // 2)

    a = ov.a[oy:oy + (y1 - y0), ox:ox + (x1 - x0)]
    region = Y[y0:y1, x0:x1]
    region[...] = (region * (255 - a) + ov.yp[oy:oy + (y1 - y0), ox:ox + (x1 - x0)] + 127) // 255

    cx0, cy0, cx1, cy1 = x0 // 2, y0 // 2, x1 // 2, y1 // 2
    cox, coy = ox // 2, oy // 2
    ca = ov.ca[coy:coy + (cy1 - cy0), cox:cox + (cx1 - cx0)]
    for plane, pre in ((U, ov.up), (V, ov.vp)):
        reg = plane[cy0:cy1, cx0:cx1]
        reg[...] = (reg * (255 - ca) + pre[coy:coy + (cy1 - cy0), cox:cox + (cx1 - cx0)] + 127) // 255
