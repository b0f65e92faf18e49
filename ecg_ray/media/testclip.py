"""Synthetic media with machine-readable content: each frame carries its number as a row of
black/white blocks at the top, and the audio carries beeps at known frames. Tests and
benchmarks use it to check outputs frame by frame.
"""

from __future__ import annotations

import subprocess
from fractions import Fraction

import numpy as np

from ecg_ray.media import ffmpeg

BITS = 12
_MARGIN = 4


def block_size(width: int) -> int:
    return max(4, min(32, (width - 2 * _MARGIN) // BITS // 2 * 2))


def _frame(n: int, w: int, h: int, rng_phase: float) -> np.ndarray:
    """One yuv420p frame: a moving gradient background and the frame number in blocks."""
    yy, xx = np.mgrid[0:h, 0:w]
    y = (64 + 64 * np.sin((xx + 3 * n) / 37.0 + rng_phase) * np.cos((yy - 2 * n) / 29.0)).astype(np.uint8)
    stamp_number(y, n)
    u = np.full((h // 2, w // 2), 128, np.uint8)
    v = np.full((h // 2, w // 2), 128, np.uint8)
    return np.concatenate([y.ravel(), u.ravel(), v.ravel()])


def stamp_number(y: np.ndarray, n: int, band_width: int | None = None) -> None:
    """Draw ``n`` as a row of black/white blocks along the top of a luma plane (in place), on a
    grey band ``band_width`` wide (default: the whole width)."""
    bs = block_size(y.shape[1])
    y[_MARGIN - 2:_MARGIN + bs + 2, :band_width] = 128
    for bit in range(BITS):
        x0 = _MARGIN + bit * bs
        y[_MARGIN:_MARGIN + bs, x0:x0 + bs] = 235 if (n >> bit) & 1 else 16


def read_frame_number(yplane: np.ndarray, src_width: int | None = None) -> int:
    """Inverse of the block pattern, from a luma plane (H, W) of a frame that may have been
    scaled from a source ``src_width`` wide."""
    w = yplane.shape[1]
    k = w / src_width if src_width else 1.0
    bs = block_size(src_width or w)
    n = 0
    for bit in range(BITS):
        x0 = int((_MARGIN + bit * bs) * k)
        y0, s = int(_MARGIN * k), int(bs * k)
        blk = yplane[y0 + 2:y0 + s - 2, x0 + 2:x0 + s - 2]
        if blk.mean() > 128:
            n |= 1 << bit
    return n


def make_numbered_video(
    path: str,
    frames: int,
    fps: Fraction | str = Fraction(25),
    size: tuple[int, int] = (320, 240),
    audio: bool = True,
    beep_frames: tuple[int, ...] = (),
    codec_args: tuple[str, ...] = ("-c:v", "libx264", "-preset", "ultrafast", "-crf", "12", "-g", "30"),
    audio_codec: str = "aac",
    vfr: bool = False,
) -> None:
    """Write a test video. Odd sizes are allowed (encoded with yuv444p then)."""
    fps = Fraction(fps)
    w, h = size
    ew, eh = w + w % 2, h + h % 2
    args = ["-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{ew}x{eh}",
            "-framerate", f"{fps.numerator}/{fps.denominator}", "-i", "pipe:0"]
    dur = frames / float(fps)
    if audio:
        # Silence with 40 ms beeps at 1 kHz starting at the given frames.
        cond = "+".join(f"between(t,{f / float(fps):.6f},{f / float(fps) + 0.04:.6f})" for f in beep_frames) or "0"
        args += ["-f", "lavfi", "-i", f"aevalsrc='0.8*sin(2*PI*1000*t)*({cond})':s=48000:d={dur:.6f}"]
    vf = []
    if (ew, eh) != (w, h):
        vf.append(f"format=yuv444p,crop={w}:{h}:0:0")
    if vfr:
        # Drop every 5th frame's slot: timestamps become irregular (true VFR).
        vf.append("select='not(eq(mod(n\\,5)\\,4))'")
    if vf:
        args += ["-vf", ",".join(vf)]
    args += list(codec_args)
    if (ew, eh) != (w, h):
        args += ["-pix_fmt", "yuv444p"] if "libx264" in codec_args else []
    else:
        args += ["-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", audio_codec, "-shortest"] if audio_codec != "pcm" else ["-c:a", "pcm_s16le", "-shortest"]
    if vfr:
        args += ["-fps_mode", "vfr"]
    args += ["-y", path]
    proc = ffmpeg.popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    stdin, stderr = ffmpeg.pipe(proc.stdin), ffmpeg.pipe(proc.stderr)
    try:
        for n in range(frames):
            stdin.write(_frame(n, ew, eh, 0.0).tobytes())
        stdin.close()
        err = stderr.read()
        if proc.wait() != 0:
            raise RuntimeError(f"test video encode failed: {err.decode()[-500:]}")
    finally:
        ffmpeg.terminate(proc)


def decode_frames(path: str) -> list[np.ndarray]:
    """All frames of the first video stream as luma planes, in presentation order."""
    import av

    out = []
    with av.open(path) as c:
        for fr in c.decode(video=0):
            out.append(fr.to_ndarray(format="gray"))
    return out

