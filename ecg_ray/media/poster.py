"""A poster image of the finished video (``options.poster``): the frame a player shows at a
given time, captions included, as JPEG or PNG.

Taken from the joined output itself, so it is exactly a frame of the video the platform gets.
The frame at ``at`` is the one on screen then: index floor(at * fps). FFmpeg's input seek keeps
the first frame whose time is at or after the seek point, so the seek goes half a frame before
that frame's time (an exact time lands on it too, whatever its rounding).
"""

from __future__ import annotations

import math

from ecg_ray.media.ffmpeg import run


def poster_frame(at: float, fps: float, frames: int) -> int:
    """The index of the frame on screen at ``at`` seconds (the last one past the end)."""
    return max(0, min(frames - 1, math.floor(at * fps + 1e-6)))


def extract_poster(video: str, frame: int, fps: float, dest: str, fmt: str) -> None:
    """Write frame ``frame`` of ``video`` (constant ``fps``: the renderer's outputs are) to ``dest``.

    The output's BT.709 limited-range YUV is turned into full-range pixels with the BT.709
    matrix, as players show it (FFmpeg's default for an untagged conversion is BT.601)."""
    seek = max(0.0, (frame - 0.5) / fps)
    convert = "scale=in_color_matrix=bt709:in_range=tv:out_range=pc"
    if fmt == "jpeg":
        args = ["-vf", f"{convert},format=yuvj444p", "-q:v", "2", "-c:v", "mjpeg"]
    else:
        args = ["-vf", f"{convert},format=rgb24", "-c:v", "png"]
    run(["-ss", f"{seek:.6f}", "-i", video, "-map", "0:v:0", "-frames:v", "1", *args, "-f", "image2",
         "-update", "1", "-y", dest], timeout=120, what="the poster's extraction")
