"""The H.264 encoder: choosing it by a real test encode, and running it over raw frames."""

from __future__ import annotations

import logging
import os
import subprocess
from functools import lru_cache

from ecg_ray.errors import RenderError
from ecg_ray.media import ffmpeg
from ecg_ray.media.models import EncoderSettings, OutputFormat

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def encoder_opens(codec: str) -> bool:
    """True if a one-frame encode with ``codec`` succeeds on this machine.

    NVML and the presence of libnvidia-encode are not enough (Hopper GPUs have neither NVENC
    nor an honest capacity figure): only opening a session tells.
    """
    try:
        ffmpeg.run(
            ["-f", "lavfi", "-i", "color=c=black:s=256x256:r=25:d=0.04", "-frames:v", "1",
             "-c:v", codec, "-pix_fmt", "yuv420p", "-f", "null", "-"],
            timeout=60, what=f"{codec} test encode",
        )
        return True
    except RenderError as exc:
        log.info("encoder unavailable", extra={"codec": codec, "reason": exc.message[:200]})
        return False


@lru_cache(maxsize=4)
def audio_encoder_opens(codec: str) -> bool:
    """True if a short encode of silence with audio encoder ``codec`` succeeds on this machine."""
    try:
        ffmpeg.run(["-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo", "-t", "0.1", "-c:a", codec,
                    "-f", "null", "-"], timeout=60, what=f"{codec} test encode")
        return True
    except RenderError as exc:
        log.info("audio encoder unavailable", extra={"codec": codec, "reason": exc.message[:200]})
        return False


def quality_to_vp9_crf(quality: int) -> int:
    """0-100 (higher is better) -> libvpx-vp9 CRF (0-63): 100 -> 20, 90 -> 24, 70 -> 30, 0 -> 55.
    VP9 at a CRF about 8 above x264's looks alike (libvpx's own guidance: 31 for 1080p)."""
    q = max(0, min(100, quality))
    return int(round(55 - q * 0.35))


def quality_to_crf(quality: int) -> int:
    """0-100 (higher is better) -> x264 CRF / NVENC CQ: 100 -> 14, 70 -> 22, 50 -> 27, 0 -> 40."""
    q = max(0, min(100, quality))
    return int(round(40 - q * 0.26))


def out_colors_tags(out: OutputFormat) -> list[str]:
    """FFmpeg output options that tag the stream with the output's colours."""
    return ["-colorspace", out.colorspace_tag, "-color_primaries", out.primaries_tag, "-color_trc", out.trc_tag,
            "-color_range", "tv"]


def tags_filter(out: OutputFormat) -> str:
    """setparams stamping the output's colours on every frame: FFmpeg's encoders write the
    frames' own tags and ignore -color_primaries/-color_trc where a frame has them (an HLG
    source came out tagged BT.2020/HLG over BT.709 pixels). Changes no pixel."""
    return (f"setparams=colorspace={out.colorspace_tag}:range=tv:color_primaries={out.primaries_tag}:"
            f"color_trc={out.trc_tag}")


def x265_hdr_params(out: OutputFormat) -> list[str]:
    """x265 parameters carrying the HDR side data kept (out.hdr) as SEI in every keyframe's
    headers: SMPTE ST 2086 in x265's units (chromaticity / 0.00002, luminance / 0.0001 cd/m2)
    and the content light level."""
    params = []
    md = out.hdr.mastering_display if out.hdr else None
    if md is not None and md.max_luminance > 0:
        def xy(p: tuple[float, float]) -> str:
            return f"({round(p[0] / 0.00002)},{round(p[1] / 0.00002)})"

        params.append(f"master-display=G{xy(md.green)}B{xy(md.blue)}R{xy(md.red)}WP{xy(md.white_point)}"
                      f"L({round(md.max_luminance / 0.0001)},{round(md.min_luminance / 0.0001)})")
    cll = out.hdr.content_light if out.hdr else None
    if cll is not None and (cll.max_cll or cll.max_fall):
        params.append(f"max-cll={cll.max_cll},{cll.max_fall}")
    if out.dynamic_range == "pq":
        params.append("hdr10=1")
    return params


def encoder_args(enc: EncoderSettings, out: OutputFormat) -> list[str]:
    crf = quality_to_crf(enc.quality)
    color = out_colors_tags(out)
    # One GOP structure for every segment of a job (segments are joined with -c copy).
    gop = max(1, int(round(float(out.fps) * 2)))
    if enc.codec == "libx265":
        # HDR kept: HEVC Main 10, a closed GOP of fixed length starting each segment (joined by
        # stream copy), parameter sets and HDR SEI repeated at every keyframe. The same CRF as
        # x264's: x265 spends fewer bits at a given CRF for the same picture.
        params = ["log-level=error", f"keyint={gop}", f"min-keyint={gop}", "scenecut=0", "open-gop=0",
                  "repeat-headers=1", *x265_hdr_params(out)]
        # -dolbyvision 0: a Dolby Vision source's RPU (frame side data on the burn path) is not
        # re-encoded: the output is its base layer, as documented, with no stale metadata.
        return ["-c:v", "libx265", "-preset", enc.preset, "-crf", str(crf), "-x265-params", ":".join(params),
                "-dolbyvision", "0",
                "-pix_fmt", out.pix_fmt, "-profile:v", "main10", "-tag:v", "hvc1", *color]
    if enc.codec == "libvpx-vp9":
        # Constant quality (-b:v 0) at libvpx's realtime speed 8 with row threading. Measured on
        # 2 cores, the 5.3 s 720p25 demo clip: as fast as x264 veryfast at CRF 22 (1.7 s of CPU),
        # PSNR 43.0 against its 42.9, 35% larger; "good" at speed 5 took 6x the CPU (11 s).
        # A fixed GOP, as for H.264: segments are joined with stream copy, each starting on a
        # keyframe. VP9 profile 0 is 8-bit 4:2:0.
        return ["-c:v", "libvpx-vp9", "-crf", str(quality_to_vp9_crf(enc.quality)), "-b:v", "0",
                "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1", "-g", str(gop), "-keyint_min", str(gop),
                "-pix_fmt", "yuv420p", *color]
    if enc.codec == "h264_nvenc":
        codec = ["-c:v", "h264_nvenc", "-preset", "p4", "-tune", "hq", "-rc", "vbr", "-cq", str(crf),
                 "-b:v", "0", "-g", str(gop), "-bf", "2", "-forced-idr", "1"]
    else:
        codec = ["-c:v", "libx264", "-preset", enc.preset, "-crf", str(crf), "-g", str(gop),
                 "-keyint_min", str(gop), "-sc_threshold", "0"]
    return [*codec, "-pix_fmt", "yuv420p", "-profile:v", "high", *color]


def timescale(out: OutputFormat) -> int:
    """An MP4 timescale in which each frame lasts a whole number of ticks (>= 10000 ticks/s)."""
    k = max(1, -(-10000 // out.fps_num))
    return out.fps_num * k


class EncoderProcess:
    """ffmpeg reading raw yuv420p (HDR kept: yuv420p10le) frames on stdin, writing an MP4 segment."""

    def __init__(self, path: str, enc: EncoderSettings, out: OutputFormat, threads: int = 0, nice: int = 0) -> None:
        args = [
            "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", out.pix_fmt, "-s", f"{out.width}x{out.height}",
            "-framerate", f"{out.fps_num}/{out.fps_den}", "-i", "pipe:0",
            # The frames are already in the output's colours (decode.py): say so, or FFmpeg
            # would take them for BT.601 and convert each one.
            "-vf", tags_filter(out),
            *encoder_args(enc, out),
        ]
        if threads:
            args += ["-threads", str(threads)]
        args += ["-video_track_timescale", str(timescale(out)), "-an", "-f", "mp4", "-y", path]
        self.path = path
        self.proc = ffmpeg.popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, nice=nice)
        self._stdin, self._stderr = ffmpeg.pipe(self.proc.stdin), ffmpeg.pipe(self.proc.stderr)
        self._err: list[bytes] = []
        self._t = ffmpeg.drain(self._stderr, self._err)

    def _fail(self, what: str) -> RenderError:
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # stopped reading but still running: it must go
            ffmpeg.terminate(self.proc)
        self._t.join(timeout=2)
        tail = b" | ".join(b"".join(self._err).strip().splitlines()[-3:]).decode("utf-8", "replace")
        rc = self.proc.returncode
        # Killed by a signal: FFmpegCrashed (the segment is retried once); the disk full: storage_failed
        err = ffmpeg.failure("encoder", rc, tail, target=self.path)
        if type(err) is RenderError and err.code == "encoder_failed":
            err = RenderError("encoder_failed", f"encoder {what} (exit {rc}): {tail[:400]}")
        return err

    def write(self, frame: bytes | bytearray | memoryview) -> None:
        # A raw pipe write may be partial (a signal, a full pipe): loop until the whole frame
        # is in, or frames would shear into each other.
        view = memoryview(frame).cast("B")
        fd = self._stdin.fileno()
        try:
            while view:
                n = os.write(fd, view)
                view = view[n:]
        except (BrokenPipeError, OSError):
            raise self._fail("stopped while receiving frames") from None

    def finish(self) -> None:
        try:
            self._stdin.close()
        except OSError:
            pass
        rc = self.proc.wait()
        self._t.join(timeout=5)
        if rc != 0:
            raise self._fail("failed")

    def abort(self) -> None:
        try:
            self._stdin.close()
        except OSError:
            pass
        ffmpeg.terminate(self.proc)
