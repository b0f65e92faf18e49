"""Decode a segment's source frames with FFmpeg, as raw yuv420p (yuv420p10le for HDR kept) at the
output size, in the output's colours."""

from __future__ import annotations

import fcntl
import io
import logging
import os
import subprocess
import tempfile
from collections.abc import Generator
from functools import lru_cache
from typing import cast

from ecg_ray.config import DEFAULT_MAX_PIXELS, HWDEC_CHOICES, usable_cores
from ecg_ray.errors import RenderError
from ecg_ray.media import ffmpeg
from ecg_ray.media.colors import color_filter, missing_tags, source_colorspace
from ecg_ray.media.models import OutputFormat, ProbeResult

log = logging.getLogger(__name__)
_F_SETPIPE_SZ = 1031


@lru_cache(maxsize=1)
def nvdec_check() -> str:
    """Why NVDEC cannot decode H.264 on this machine (FFmpeg's last lines), or "" if it can.

    A real decode, as for the encoder (encode.encoder_opens): the frames are kept on the GPU
    and downloaded by the filter graph, so FFmpeg falling back to its CPU decoder (which it does
    quietly when the GPU cannot take a stream) fails the test instead of passing it."""
    with tempfile.TemporaryDirectory(prefix="ecg-nvdec-") as tmp:
        clip = os.path.join(tmp, "test.mp4")
        try:
            ffmpeg.run(["-f", "lavfi", "-i", "testsrc=s=256x144:r=25:d=0.2", "-c:v", "libx264", "-pix_fmt",
                        "yuv420p", "-y", clip], timeout=60, what="NVDEC test clip")
            ffmpeg.run(["-hwaccel", "cuda", "-hwaccel_output_format", "cuda", "-i", clip,
                        "-vf", "hwdownload,format=nv12", "-f", "null", "-"], timeout=60, what="NVDEC test decode")
        except RenderError as exc:
            return exc.message[-300:]
    return ""


def resolve_hwdec(requested: str) -> str:
    """What decodes a segment here: "cuda" (NVDEC) or "none" (the CPU), for ECG_HWDEC's value.

    auto: NVDEC where a test decode works on this node, else the CPU. cuda: NVDEC, and a clear
    error where it does not work (the operator asked for it). Streams NVDEC cannot take (a
    codec or profile it lacks) are decoded on the CPU by FFmpeg itself, with the same frames."""
    if requested not in HWDEC_CHOICES:
        raise RenderError("invalid_options", f"ECG_HWDEC={requested!r} is not one of {', '.join(HWDEC_CHOICES)}")
    if requested == "none":
        return "none"
    why = nvdec_check()
    if not why:
        return "cuda"
    if requested == "cuda":
        raise RenderError("encoder_failed", f"ECG_HWDEC=cuda, but NVDEC does not decode on this node: {why}")
    log.info("NVDEC unavailable; decoding on the CPU", extra={"reason": why[:200]})
    return "none"


def frame_bytes(out: OutputFormat) -> int:
    """A raw 4:2:0 frame's bytes: 8-bit, or 10-bit in 16-bit words (HDR kept)."""
    return out.width * out.height * 3 // 2 * (2 if out.bit_depth > 8 else 1)


def scale_filter(src: ProbeResult, out: OutputFormat) -> str | None:
    # Fit inside the output and pad (letterbox) rather than distort; odd sources get one
    # pixel of padding so that no source pixel is lost. Same size: no filter at all. The
    # source's pixel format is kept (10-bit stays 10-bit until colours are converted).
    w, h = out.width, out.height
    if (src.width, src.height) == (w, h):
        return None
    return (
        f"scale={w}:{h}:force_original_aspect_ratio=decrease:flags=bicubic,"
        f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1"
    )


def source_filters(src: ProbeResult, out: OutputFormat) -> list[str]:
    """The filters from a decoded source frame to the output's picture, before any caption:
    untagged colours said, scaled and padded, colours converted (colors.color_filter)."""
    return [f for f in (source_colors(src), scale_filter(src, out), color_filter(src, out)) if f]


def out_colors(out: OutputFormat) -> tuple[str, str]:
    """(colorspace, range) of what we write: FFmpeg's names."""
    return out.colorspace_tag, "tv"


def source_colors(src: ProbeResult) -> str | None:
    """A setparams filter saying what an untagged source's colours are taken to be
    (plan.source_colorspace), or None when the file says.

    Without it FFmpeg takes "unknown" for BT.601 and, with our output tagged, converts every
    frame: a colour shift for HD sources, and 11-16% more CPU per frame (measured on 2 cores)."""
    parts = missing_tags(src)
    if not src.colorspace:
        parts.append("colorspace=" + source_colorspace(src))
    if not src.color_range:
        parts.append("range=tv")
    return "setparams=" + ":".join(parts) if parts else None


def seek_args(src: ProbeResult, first: int) -> list[str]:
    """Input options that make source frame ``first`` the first one decoded."""
    if first <= 0:
        return []
    # Seek to half a frame before the first wanted frame: FFmpeg's accurate seek then drops
    # everything earlier, so the first decoded frame is exactly the wanted one.
    t_prev, t_first = src.frame_times[first - 1], src.frame_times[first]
    return ["-ss", f"{src.start + (t_prev + t_first) / 2:.6f}"]


def decoder_threads(most: int) -> list[str]:
    """Input options capping the video decoder's threads at ``most``, and at one per core this
    process may use plus one (FFmpeg's own count, which sees every core of the machine however
    many segments share it, and keeps a frame in flight per thread); none for ``most`` <= 0."""
    if most <= 0:
        return []
    return ["-threads", str(max(1, min(most, usable_cores() + 1)))]


class SourceFrames:
    """Yields the raw frames of some output frames, given the source frame of each
    (plan.source_frame_map over their range)."""

    def __init__(self, path: str, src: ProbeResult, out: OutputFormat, frame_map: list[int],
                 hwdec: str = "none", threads: int = 0, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.path, self.src, self.out = path, src, out
        self.max_pixels = max_pixels
        self.threads = threads
        self.map = frame_map
        self.first, self.last = self.map[0], self.map[-1]
        self.hwdec = hwdec
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr: list[bytes] = []

    def _args(self) -> list[str]:
        args: list[str] = ["-loglevel", "error"]
        if self.hwdec == "cuda":
            args += ["-hwaccel", "cuda"]
        args += seek_args(self.src, self.first)
        # The probe refused oversized inputs from their headers and first frames; a stream whose
        # pictures grow later is refused here by the decoder itself instead of allocating them.
        args += [
            "-max_pixels", str(self.max_pixels), *decoder_threads(self.threads),
            "-i", self.path,
            "-map", "0:v:0", "-an", "-sn", "-dn",
            *(["-vf", ",".join(vf)] if (vf := source_filters(self.src, self.out)) else []),
            # Converted here where the source's colours differ from the output's.
            "-colorspace", out_colors(self.out)[0], "-color_range", out_colors(self.out)[1],
            "-fps_mode", "passthrough",
            "-frames:v", str(self.last - self.first + 1),
            "-f", "rawvideo", "-pix_fmt", self.out.pix_fmt, "pipe:1",
        ]
        return args

    def __iter__(self) -> Generator[bytearray, None, None]:
        size = frame_bytes(self.out)
        self.proc = ffmpeg.popen(self._args(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        stdout = cast(io.RawIOBase, ffmpeg.pipe(self.proc.stdout))  # unbuffered (bufsize=0): readinto
        try:
            fcntl.fcntl(stdout.fileno(), _F_SETPIPE_SZ, 1 << 20)
        except OSError:
            pass
        err_thread = ffmpeg.drain(ffmpeg.pipe(self.proc.stderr), self._stderr)
        try:
            cur_src = self.first - 1
            buf: bytearray | None = None
            for want in self.map:
                while cur_src < want:
                    buf = bytearray(size)
                    view = memoryview(buf)
                    got = 0
                    while got < size:
                        n = stdout.readinto(view[got:])
                        if not n:
                            break
                        got += n
                    if got < size:
                        rc = self.proc.wait()
                        err_thread.join(timeout=2)
                        msg = b" | ".join(b"".join(self._stderr).strip().splitlines()[-3:]).decode("utf-8", "replace")
                        if rc < 0:
                            # Killed (OOM killer, a crash), not a short source: worth a retry.
                            raise ffmpeg.failure(
                                f"decoder (frames from {self.first}, {cur_src - self.first + 1} read)", rc, msg)
                        grown = next((ln for ln in self._stderr if b"exceeds specified max pixel count" in ln), None)
                        if grown is not None:
                            size_said = grown.split(b"Picture size ")[-1].split(b" ")[0].decode("ascii", "replace")
                            raise RenderError(
                                "input_too_large",
                                f"the video's pictures grow to {size_said} after frame {cur_src}, over the limit "
                                f"of {self.max_pixels} pixels (ECG_MAX_PIXELS)")
                        raise RenderError(
                            "invalid_input",
                            f"source ended early: got {cur_src - self.first + 1} of "
                            f"{self.last - self.first + 1} frames from frame {self.first}"
                            + (f" ({msg[:300]})" if msg else ""),
                        )
                    cur_src += 1
                # A duplicated output frame shares the buffer: consumers never mutate the source.
                assert buf is not None  # the map starts at self.first
                yield buf
        finally:
            if self.proc.poll() is None:
                # Stopped early (cancel, a failed segment): the decoder is most likely blocked writing
                # into a full pipe, where SIGTERM does not reach it (the write is restarted) and
                # terminate() would wait its 5 s for nothing. With our end closed the write fails
                # and it exits at once.
                try:
                    stdout.close()
                except OSError:
                    pass
            ffmpeg.terminate(self.proc)
            err_thread.join(timeout=2)

