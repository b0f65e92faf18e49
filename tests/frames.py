"""Frame-by-frame checks of rendered outputs."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ecg_ray.media.testclip import decode_frames, read_frame_number


def frame_numbers(path, src_width: int | None = None) -> list[int]:
    return [read_frame_number(y, src_width) for y in decode_frames(str(path))]


def caption_mask(out_path, src_path, band=(0.55, 1.0), thresh=60, min_pixels=40) -> list[bool]:
    """Per output frame: does the caption band differ strongly from the source frame?

    Captions are white text with a black outline; encoder noise between two encodes of the
    same frame stays far below ``thresh`` luma levels on all but a handful of pixels.
    """
    out = decode_frames(str(out_path))
    src = decode_frames(str(src_path))
    assert len(out) == len(src), (len(out), len(src))
    h = out[0].shape[0]
    y0, y1 = int(band[0] * h), int(band[1] * h)
    mask = []
    for o, s in zip(out, src):
        d = np.abs(o[y0:y1].astype(np.int16) - s[y0:y1].astype(np.int16))
        mask.append(int((d > thresh).sum()) >= min_pixels)
    return mask


def frames_for(start: float, end: float, fps: Fraction, total: int) -> set[int]:
    """Output frames n with start <= n/fps < end (half-open cue)."""
    return {n for n in range(total) if start <= n / fps < end}


def beep_onsets(path, threshold=0.2) -> list[float]:
    """Times (s) where the first audio track goes from silence to a beep."""
    import av

    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        stream = c.streams.audio[0]
        rate = stream.rate
        chunks = []
        first_pts = None
        for frame in c.decode(stream):
            if first_pts is None and frame.pts is not None:
                first_pts = float(frame.pts * frame.time_base)
            arr = frame.to_ndarray()
            if arr.ndim == 2 and arr.shape[0] > 1 and not frame.format.is_planar:
                arr = arr.reshape(-1, len(frame.layout.channels)).T
            chunks.append(np.abs(arr.astype(np.float32)).max(axis=0) if arr.ndim == 2 else np.abs(arr))
    env = np.concatenate(chunks)
    if env.max() > 1.5:  # integer samples
        env = env / 32768.0
    above = env > threshold
    onsets = []
    last = -1e9
    for i in np.flatnonzero(above):
        t = i / rate
        if t - last > 0.2:
            onsets.append(t + (first_pts or 0.0))
        last = t
    return onsets


def audio_duration(path) -> float:
    import av

    with av.open(str(path)) as c:
        if not c.streams.audio:
            return 0.0
        s = c.streams.audio[0]
        total = 0
        first = None
        for fr in c.decode(s):
            if first is None:
                first = float(fr.pts * fr.time_base) if fr.pts is not None else 0.0
            total += fr.samples
        return (first or 0.0) + total / s.rate


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)
