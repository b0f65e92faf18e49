"""Alpha-blend a captured caption overlay (straight-alpha RGBA PNG) onto a yuv420p frame.

Blending in Y'CbCr is the same as blending in R'G'B' (the conversion is affine), which is
what the browser itself does. Only the overlay's clip rectangle is touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (Kr, Kb) of the matrices we write.
_MATRICES = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114), "bt2020": (0.2627, 0.0593)}
# BT.709 -> BT.2020 primaries in linear light (ITU-R BT.2087).
_709_TO_2020 = np.array([[0.6274, 0.3293, 0.0433],
                         [0.0691, 0.9195, 0.0114],
                         [0.0164, 0.0880, 0.8956]], dtype=np.float32)
# HDR reference white (BT.2408): caption white is drawn at 203 cd/m2 in PQ, 75% signal in HLG
# (203 cd/m2 on HLG's nominal 1000 cd/m2 display), not at the format's peak.
_REFERENCE_WHITE = 203.0
_HLG_PEAK = 1000.0
_HLG_GAMMA = 1.2
_PQ = (0.1593017578125, 78.84375, 0.8359375, 18.8515625, 18.6875)  # m1, m2, c1, c2, c3 (ST 2084)
_HLG = (0.17883277, 0.28466892, 0.55991073)                         # a, b, c (BT.2100)


def caption_matrix(colors: str) -> str:
    """The Y'CbCr matrix of OutputFormat.caption_colors ("bt709", "bt601", "bt2020-pq", ...)."""
    return "bt2020" if colors.startswith("bt2020") else colors


def to_signal(rgb: np.ndarray, colors: str) -> np.ndarray:
    """Caption R'G'B' (0-255, as the page drew it for an SDR display) as the output's R'G'B'
    signal (0-255): itself for SDR; for HDR, its display light (BT.1886, gamma 2.4) in BT.2020
    primaries with white at the reference white, through the PQ or HLG curve."""
    if not colors.startswith("bt2020-"):
        return rgb
    lin = (np.clip(rgb, 0, 255) / 255.0) ** 2.4
    lin = np.clip(lin @ _709_TO_2020.T, 0.0, None)
    if colors == "bt2020-pq":
        m1, m2, c1, c2, c3 = _PQ
        p = (lin * (_REFERENCE_WHITE / 10000.0)) ** m1
        sig = ((c1 + c2 * p) / (1.0 + c3 * p)) ** m2
    else:
        # Display light to scene light (the inverse of HLG's OOTF, on luminance), then the OETF.
        disp = lin * (_REFERENCE_WHITE / _HLG_PEAK)
        yd = disp @ np.array([0.2627, 0.6780, 0.0593], dtype=np.float32)
        gain = np.power(np.maximum(yd, 1e-12), (1.0 - _HLG_GAMMA) / _HLG_GAMMA)
        e = np.clip(disp * gain[..., None], 0.0, 1.0)
        a, b, c = _HLG
        sig = np.where(e <= 1.0 / 12.0, np.sqrt(3.0 * e), a * np.log(np.maximum(12.0 * e - b, 1e-12)) + c)
    out: np.ndarray = (sig * 255.0).astype(np.float32)
    return out


@dataclass
class Overlay:
    """A prepared overlay, trimmed to where it is not transparent. For each plane, what blending
    needs per pixel: out = (src * inv + pre) // 255, with pre = value * alpha + 127 (rounding).
    Every term fits in uint16 (255 * 255 + 127 < 65536), which halves the memory traffic; for
    10-bit frames (HDR kept, ``bits`` 10) the values are 10-bit and the terms uint32."""

    x: int
    y: int
    w: int
    h: int
    inv: np.ndarray   # 255 - luma alpha, uint16, (h, w)
    yp: np.ndarray    # Y * a + 127, uint16
    cinv: np.ndarray  # 255 - chroma alpha (2x2 mean), uint16, (h/2, w/2)
    up: np.ndarray    # Cb * a + 127, uint16
    vp: np.ndarray    # Cr * a + 127, uint16
    bits: int = 8


def _matrix(matrix: str) -> np.ndarray:
    """R'G'B' (0-255) -> limited-range Y', Cb, Cr offsets from (16, 128, 128)."""
    kr, kb = _MATRICES[matrix]
    kg = 1.0 - kr - kb
    return np.array([
        [kr * 219 / 255, kg * 219 / 255, kb * 219 / 255],
        [-kr / (2 * (1 - kb)) * 224 / 255, -kg / (2 * (1 - kb)) * 224 / 255, (1 - kb) / (2 * (1 - kb)) * 224 / 255],
        [(1 - kr) / (2 * (1 - kr)) * 224 / 255, -kg / (2 * (1 - kr)) * 224 / 255, -kb / (2 * (1 - kr)) * 224 / 255],
    ], dtype=np.float32).T


def prepare(png: bytes | np.ndarray, x: int, y: int, matrix: str = "bt709") -> Overlay | None:
    """Decode a PNG captured at (x, y) (both even) into blend-ready planes; None if empty.
    ``matrix`` is the output's caption_colors (an HDR one gives 10-bit planes).

    Called once per changed overlay, off the encoder's thread (segment.py): the capture clip
    has margins for shadows and glows, so the planes are first trimmed to the pixels that show."""
    got = _decode_trimmed(png)
    if got is None:
        return None
    rgba, x0, y0 = got
    h, w = rgba.shape[:2]
    bits = 10 if matrix.startswith("bt2020-") else 8
    k = float(1 << (bits - 8))
    af = rgba[..., 3].astype(np.float32)
    ycc = to_signal(rgba[..., :3].astype(np.float32), matrix) @ (_matrix(caption_matrix(matrix)) * k)  # (h, w, 3)
    ycc += np.array([16.0 * k, 128.0 * k, 128.0 * k], dtype=np.float32)
    ycc *= af[..., None]  # premultiplied by alpha

    def pool(m: np.ndarray) -> np.ndarray:
        pooled: np.ndarray = (m[0::2, 0::2] + m[1::2, 0::2] + m[0::2, 1::2] + m[1::2, 1::2]) * 0.25
        return pooled

    word = np.uint16 if bits == 8 else np.uint32

    def u16(m: np.ndarray, add: float) -> np.ndarray:
        return np.rint(m + add).astype(word)

    return Overlay(
        x=x + x0, y=y + y0, w=w, h=h,
        inv=(255 - rgba[..., 3]).astype(word),
        yp=u16(ycc[..., 0], 127.0),
        cinv=u16(255.0 - np.rint(pool(af)), 0.0),
        up=u16(np.rint(pool(ycc[..., 1])), 127.0),
        vp=u16(np.rint(pool(ycc[..., 2])), 127.0),
        bits=bits,
    )


def blend(frame: bytearray, width: int, height: int, ov: Overlay) -> None:
    """Blend ``ov`` into ``frame`` (yuv420p, or yuv420p10le for a 10-bit overlay; in place),
    clipped to the frame."""
    x0, y0 = max(0, ov.x), max(0, ov.y)
    x1, y1 = min(width, ov.x + ov.w), min(height, ov.y + ov.h)
    if x1 <= x0 or y1 <= y0:
        return
    ox, oy = x0 - ov.x, y0 - ov.y
    buf = np.frombuffer(frame, dtype=np.uint8 if ov.bits == 8 else np.uint16)
    ysz = width * height
    Y = buf[:ysz].reshape(height, width)
    U = buf[ysz:ysz + ysz // 4].reshape(height // 2, width // 2)
    V = buf[ysz + ysz // 4:].reshape(height // 2, width // 2)

    inv = ov.inv[oy:oy + (y1 - y0), ox:ox + (x1 - x0)]
    region = Y[y0:y1, x0:x1]
    region[...] = (region * inv + ov.yp[oy:oy + (y1 - y0), ox:ox + (x1 - x0)]) // 255

    cx0, cy0, cx1, cy1 = x0 // 2, y0 // 2, x1 // 2, y1 // 2
    cox, coy = ox // 2, oy // 2
    cinv = ov.cinv[coy:coy + (cy1 - cy0), cox:cox + (cx1 - cx0)]
    for plane, pre in ((U, ov.up), (V, ov.vp)):
        reg = plane[cy0:cy1, cx0:cx1]
        reg[...] = (reg * cinv + pre[coy:coy + (cy1 - cy0), cox:cox + (cx1 - cx0)]) // 255


@dataclass
class YuvaOverlay:
    """A capture as straight-alpha yuva420p planes, trimmed to where it shows (x, y, w, h even):
    what FFmpeg's overlay filter blends (burn.py). Chroma is the alpha-weighted mean of each 2x2
    block, so transparent pixels do not pull the colour of antialiased edges towards black."""

    x: int
    y: int
    w: int
    h: int
    yp: np.ndarray  # uint8 (h, w)
    up: np.ndarray  # uint8 (h/2, w/2)
    vp: np.ndarray
    ap: np.ndarray  # uint8 (h, w)


def decode_png(png: bytes) -> np.ndarray:
    """A PNG as an (h, w, 4) RGBA array, decoded by FFmpeg's PNG decoder (PyAV): 2.4 against
    5.7 ms for PIL on a 1436x174 caption capture, the same pixels. A new decoder each time: one
    decoder fed several PNGs keeps state between them and got 75 of 115 captures wrong."""
    import av

    ctx = av.CodecContext.create("png", "r")
    try:
        frames = ctx.decode(av.Packet(png))
    except av.error.FFmpegError as exc:
        raise ValueError(f"caption capture is not a valid PNG: {exc}") from None
    if not frames:
        raise ValueError("caption capture is not a valid PNG: no picture in it")
    return frames[0].to_ndarray(format="rgba")


def _decode_trimmed(png: bytes | np.ndarray) -> tuple[np.ndarray, int, int] | None:
    """The PNG (or an RGBA array already decoded: a lane's rectangle of a sheet, overlay.py)
    as RGBA, trimmed to an even-aligned box around its visible pixels: (rgba, x0, y0)."""
    rgba = png if isinstance(png, np.ndarray) else decode_png(png)
    alpha8 = rgba[..., 3]
    rows = np.flatnonzero(alpha8.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(alpha8.any(axis=0))
    y0, x0 = int(rows[0]) & ~1, int(cols[0]) & ~1
    rgba = rgba[y0:int(rows[-1]) + 1, x0:int(cols[-1]) + 1]
    h, w = rgba.shape[:2]
    if h % 2 or w % 2:
        rgba = np.pad(rgba, ((0, h % 2), (0, w % 2), (0, 0)))
    return rgba, x0, y0


def to_yuva(png: bytes | np.ndarray, x: int, y: int, matrix: str = "bt709") -> YuvaOverlay | None:
    """Decode a PNG captured at (x, y) (both even) into yuva420p planes; None if nothing shows.

    Plane by plane in float32 (a (h, w, 3) @ (3, 3) product took twice as long: 11.7 against
    5.3 ms for a 1500x160 caption on 2 cores); chroma is computed at its own quarter size."""
    got = _decode_trimmed(png)
    if got is None:
        return None
    rgba, x0, y0 = got
    h, w = rgba.shape[:2]
    m = _matrix(caption_matrix(matrix))
    if matrix.startswith("bt2020-"):  # HDR kept: the caption in the output's signal (8-bit, widened by FFmpeg)
        sig = to_signal(rgba[..., :3].astype(np.float32), matrix)
        r, g, b = (np.ascontiguousarray(sig[..., i]) for i in range(3))
    else:
        r, g, b = (rgba[..., i].astype(np.float32) for i in range(3))
    a8 = rgba[..., 3]
    a = a8.astype(np.float32)
    luma = r * m[0, 0]
    luma += g * m[1, 0]
    luma += b * m[2, 0]
    luma += 16.5  # (+0.5: rounds when truncated; valid R'G'B' stays inside 16-235)

    def pool(p: np.ndarray) -> np.ndarray:
        summed: np.ndarray = p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2]
        return summed

    r *= a
    g *= a
    b *= a
    rs, gs, bs, asum = pool(r), pool(g), pool(b), pool(a)
    inv = np.divide(1.0, asum, out=np.zeros_like(asum), where=asum > 0)  # fully transparent: 128

    def chroma(k: int) -> np.ndarray:
        c = rs * m[0, k]
        c += gs * m[1, k]
        c += bs * m[2, k]
        c *= inv
        c += 128.5
        out: np.ndarray = c.astype(np.uint8)
        return out

    return YuvaOverlay(x=x + x0, y=y + y0, w=w, h=h, yp=luma.astype(np.uint8), up=chroma(1), vp=chroma(2),
                       ap=np.ascontiguousarray(a8))


class OverlayCanvas:
    """The overlay as one yuva420p picture, changed in place: painting a new capture clears the
    previous one's box only. It covers the frame's rows [top, top + height) (the whole frame by
    default; burn.py uses a band down to the frame's bottom, where captions usually are)."""

    def __init__(self, width: int, height: int, top: int = 0) -> None:
        self.width, self.height, self.top = width, height, top
        ysz, csz = width * height, (width // 2) * (height // 2)
        self.buf = bytearray(ysz * 2 + csz * 2)
        mem = np.frombuffer(self.buf, dtype=np.uint8)
        self.Y = mem[:ysz].reshape(height, width)
        self.U = mem[ysz:ysz + csz].reshape(height // 2, width // 2)
        self.V = mem[ysz + csz:ysz + 2 * csz].reshape(height // 2, width // 2)
        self.A = mem[ysz + 2 * csz:].reshape(height, width)
        self.U[...] = 128
        self.V[...] = 128
        self._box: tuple[int, int, int, int] | None = None  # (x0, y0, x1, y1) that may be non-transparent

    @property
    def empty(self) -> bool:
        return self._box is None

    def fits(self, ov: YuvaOverlay | None) -> bool:
        """Does the canvas hold all of ``ov`` that is inside the frame (nothing above its top)?"""
        return ov is None or self.top == 0 or ov.y >= self.top or ov.y + ov.h <= 0

    def clear(self) -> None:
        if self._box is not None:
            x0, y0, x1, y1 = self._box
            self.A[y0:y1, x0:x1] = 0
            self._box = None

    def paint(self, ov: YuvaOverlay | None) -> None:
        self.clear()
        if ov is None:
            return
        oy0 = ov.y - self.top  # in canvas rows
        x0, y0 = max(0, ov.x), max(0, oy0)
        x1, y1 = min(self.width, ov.x + ov.w), min(self.height, oy0 + ov.h)
        if x1 <= x0 or y1 <= y0:
            return
        ox, oy = x0 - ov.x, y0 - oy0
        self.Y[y0:y1, x0:x1] = ov.yp[oy:oy + y1 - y0, ox:ox + x1 - x0]
        self.A[y0:y1, x0:x1] = ov.ap[oy:oy + y1 - y0, ox:ox + x1 - x0]
        cx0, cy0, cx1, cy1, cox, coy = x0 // 2, y0 // 2, x1 // 2, y1 // 2, ox // 2, oy // 2
        self.U[cy0:cy1, cx0:cx1] = ov.up[coy:coy + cy1 - cy0, cox:cox + cx1 - cx0]
        self.V[cy0:cy1, cx0:cx1] = ov.vp[coy:coy + cy1 - cy0, cox:cox + cx1 - cx0]
        self._box = (x0, y0, x1, y1)
