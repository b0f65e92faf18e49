"""The captions alone, with transparency (``options.alpha_video``): for platforms that composite
them over the video in their own player.

One FFmpeg per segment takes the caption pictures as burn.py's does (a sparse NUT stream of
yuva420p pictures, each stamped with the output frame from which it shows) and, with no source
at all, holds each picture until the next (the fps filter) and encodes the frames with their
alpha: VP9 with alpha in WebM (libvpx-vp9, ``yuva420p``, lossless), or ProRes 4444 in MOV
(``prores_aw``, ``yuva444p10le``). The segments are joined with stream copy as the
video's are (concat.py), on the same frame grid.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Literal

from ecg_ray.media.burn import PictureProcess
from ecg_ray.media.encode import timescale
from ecg_ray.media.models import OutputFormat

# options.alpha_video.format: a segment's muxer (FFmpeg's -f) and the joined file's container
# (containers.py), whose join copies the video stream
AlphaFormat = Literal["webm", "mov"]


def alpha_path(video: str, fmt: AlphaFormat) -> str:
    """Where the captions-only file of ``video`` is written: beside it, ``{name}.captions.{fmt}``."""
    return f"{os.path.splitext(video)[0]}.captions.{fmt}"


def _colors(out: OutputFormat, fmt: AlphaFormat) -> tuple[str, list[str]]:
    """The output's colour tags (setparams on the frames, which encoders take them from; and the
    encoder's options)."""
    trc = out.trc_tag
    if fmt == "mov" and trc == "smpte170m":
        # ProRes's frame header has no code for BT.601's transfer (prores_aw wrote 0, "reserved",
        # which FFmpeg's scaler then refused to read): it is BT.709's curve, tagged so.
        trc = "bt709"
    tags = [out.colorspace_tag, out.primaries_tag, trc]
    return ("setparams=colorspace={}:range=tv:color_primaries={}:color_trc={}".format(*tags),
            ["-colorspace", tags[0], "-color_primaries", tags[1], "-color_trc", tags[2], "-color_range", "tv"])


def alpha_codec_args(fmt: AlphaFormat, out: OutputFormat) -> list[str]:
    """Encoder options of a captions-only segment (8-bit SDR frames in the output's colours)."""
    color = _colors(out, fmt)[1]
    if fmt == "webm":
        # libvpx encodes the alpha plane as a second VP9 stream with the same settings; Matroska
        # carries it beside each frame (BlockAdditional). Lossless: lossy VP9 left alpha 1 on
        # frames after a caption went (predicted from the frames with it), where nothing may
        # show. Measured on 2 cores, the 5.3 s 720p25 demo: 720 KB (CRF 18: 341 KB; the video
        # itself 1.5 MB), 2.5-3.0 s for the pass against 1.9 s. Realtime speed 8 as for the video
        # (encode.py); no alt-ref frames, which libvpx's alpha encoding needs. A keyframe starts
        # each segment (joined by stream copy).
        gop = max(1, int(round(float(out.fps) * 2)))
        return ["-c:v", "libvpx-vp9", "-pix_fmt", "yuva420p", "-lossless", "1",
                "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1", "-auto-alt-ref", "0",
                "-g", str(gop), "-keyint_min", str(gop), *color]
    # ProRes 4444 (profile 4, ap4h): intra-only, 10-bit 4:4:4 with alpha (the 8-bit alpha widened
    # to 10 bits: 0 stays 0). FFmpeg's prores_aw, not prores_ks: on 2 cores, 132 frames of the
    # 720p demo's captions took 1.8 s of CPU against 10.6 s, 8.8 MB against 9.1 MB, alpha the same.
    return ["-c:v", "prores_aw", "-profile:v", "4", "-pix_fmt", "yuva444p10le", "-vendor", "apl0", *color,
            "-video_track_timescale", str(timescale(out))]


class AlphaProcess(PictureProcess):
    """FFmpeg writing ``frames`` captions-only frames into ``dest`` (``fmt``: webm or mov).

    The pictures cover the whole frame (``begin(out.height)``); the last one is written again
    at the segment's last frame (``write``'s caller does), so the fps filter, which repeats
    each picture up to the next one's time, ends on exactly ``frames`` frames."""

    def __init__(self, out: OutputFormat, fmt: AlphaFormat, frames: int, dest: str, threads: int = 0, nice: int = 0,
                 on_frames: Callable[[int], None] = lambda n: None) -> None:
        # Drawn in the output's colours (composite.to_yuva): tagged so, as burn.py does.
        graph = f"{_colors(out, fmt)[0]},fps={out.fps_num}/{out.fps_den}"
        args = ["-loglevel", "error", "-probesize", "32", "-analyzeduration", "0", "-thread_queue_size", "4",
                "-f", "nut", "-i", "pipe:0", "-vf", graph, "-an", "-sn", "-dn", "-frames:v", str(frames),
                *alpha_codec_args(fmt, out)]
        if threads:
            args += ["-threads", str(threads)]
        args += ["-progress", "pipe:1", "-stats_period", "0.5", "-nostats", "-f", fmt, "-y", dest]
        self._start(args, out, frames, dest, nice, on_frames)
