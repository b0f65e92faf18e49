"""One FFmpeg per segment that decodes the source range, burns the captions in and encodes.

The captions reach it on stdin as a sparse NUT stream of yuva420p pictures, each stamped with
the output frame from which it shows; FFmpeg's overlay filter holds a picture until the next
one. So the video itself never passes through Python (and never through a pipe): a segment
costs about what a bare transcode of its frames costs, plus the captures. Measured at 1080p,
splitting decode and encode into two processes joined by a raw pipe cost 14% (16 cores) to 25%
(2 cores) before anything was drawn (bench/overhead.py).

Used when the segment's output frames are its source frames one for one (a constant-rate
source rendered at its own rate: the usual case). Other frame maps (variable frame rate, a
changed rate) go through decode.py's relay, which can repeat and drop frames.
"""

from __future__ import annotations

import fcntl
import subprocess
import threading
from collections.abc import Callable
from fractions import Fraction

from ecg_ray.config import DEFAULT_MAX_PIXELS
from ecg_ray.errors import RenderError
from ecg_ray.media import ffmpeg
from ecg_ray.media.decode import decoder_threads, out_colors, seek_args, source_filters
from ecg_ray.media.encode import encoder_args, tags_filter, timescale
from ecg_ray.media.models import EncoderSettings, OutputFormat, ProbeResult

# An overlay picture is a band of the frame or all of it (up to 5 MB at 1080p): a 1 MiB pipe and
# muxer buffer move one in a few writes instead of 160 of 32 KiB (measured with whole 1080p
# pictures on 2 cores: 6.7 -> 4.2 ms a picture).
PIPE_BYTES = 1 << 20

# More ranges than this and the overlay is blended on every frame instead (a long expression
# costs more per frame than blending a transparent picture).
MAX_ENABLE_RANGES = 64


# FFmpeg 5.1 (Debian 12's) evaluates a filter's timeline on whichever input it has just consumed:
# overlay's `n` then counted the caption pictures, not the video's frames, and the demo's fade-in
# frames lost their captions (4 frames; tests/test_image.py). 9.0 evaluates it on the main input
# (the whole suite); 6.x-8.x were not tried. Older builds blend every frame instead (enable=None).
TIMELINE_ON_MAIN_INPUT = (9, 0)


def timeline_usable(version: tuple[int, ...]) -> bool:
    """Can an overlay's enable expression count the video's frames with this FFmpeg? Builds that
    do not say their version (git snapshots) are taken to be recent."""
    return not version or version >= TIMELINE_ON_MAIN_INPUT


def is_one_for_one(frame_map: list[int]) -> bool:
    """True if output frame k shows source frame map[0] + k for the whole range."""
    return all(b == a + 1 for a, b in zip(frame_map, frame_map[1:]))


def enable_expr(covered: list[bool]) -> str | None:
    """A timeline expression true on the frames (segment-local) where a caption can show, or
    None when the ranges are too many to be worth it."""
    ranges: list[tuple[int, int]] = []
    for i, c in enumerate(covered):
        if not c:
            continue
        if ranges and ranges[-1][1] == i - 1:
            ranges[-1] = (ranges[-1][0], i)
        else:
            ranges.append((i, i))
    if len(ranges) > MAX_ENABLE_RANGES:
        return None
    if not ranges:
        return "0"
    return "+".join(f"between(n,{a},{b})" for a, b in ranges)


class PictureProcess:
    """An FFmpeg that takes caption pictures on stdin as a sparse NUT stream of yuva420p (started
    by ``_start`` with its arguments) and writes ``frames`` frames to ``dest``.

    ``begin(rows)`` fixes the pictures' height, then ``write(k, picture)`` hands it the overlay
    from segment-local frame k on (increasing k; the first at k=0); ``finish()`` waits for the
    segment and checks that every frame was written.
    """

    def _start(self, args: list[str], out: OutputFormat, frames: int, dest: str, nice: int,
               on_frames: Callable[[int], None], max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        import av

        self.frames, self.dest, self.on_frames = frames, dest, on_frames
        self.max_pixels = max_pixels
        self.proc = ffmpeg.popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 nice=nice)
        self._stdin, self._stdout = ffmpeg.pipe(self.proc.stdin), ffmpeg.pipe(self.proc.stdout)
        self._stderr = ffmpeg.pipe(self.proc.stderr)
        try:
            fcntl.fcntl(self._stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass  # above the system's pipe-max-size: the default pipe works, a little slower
        self._err: list[bytes] = []
        self.encoded = 0
        progress = threading.Thread(target=self._read_progress, daemon=True)
        progress.start()
        self._threads = [ffmpeg.drain(self._stderr, self._err), progress]
        try:
            self._mux = av.open(self._stdin, mode="w", format="nut", buffer_size=PIPE_BYTES)
        except BaseException:
            self.abort()
            raise
        self._out = out
        self._closed = False

    def begin(self, rows: int) -> None:
        """Fix the pictures' height: the ``rows`` bottom rows of the frame (even; all of them for
        whole-frame pictures). FFmpeg waits for this (the stream's header) before it decodes."""
        out = self._out
        self._stream = self._mux.add_stream("rawvideo", rate=Fraction(out.fps_num, out.fps_den))
        self._stream.width, self._stream.height = out.width, rows
        self._stream.pix_fmt = "yuva420p"
        self._tb = Fraction(out.fps_den, out.fps_num)
        self._stream.time_base = self._tb

    def _read_progress(self) -> None:
        for line in iter(self._stdout.readline, b""):
            if line.startswith(b"frame="):
                try:
                    self.encoded = int(line[6:])
                except ValueError:
                    continue
                self.on_frames(self.encoded)

    def write(self, k: int, picture: bytes | bytearray) -> None:
        import av

        # copied by the muxer before write() returns; PyAV takes any buffer (its stub says bytes)
        pkt = av.Packet(memoryview(picture))  # type: ignore[arg-type]
        pkt.stream = self._stream
        pkt.pts = pkt.dts = k
        pkt.time_base = self._tb
        try:
            self._mux.mux(pkt)
        except (BrokenPipeError, OSError, av.error.FFmpegError):
            raise self._failure("stopped while receiving captions") from None

    def _tail(self) -> str:
        return b" | ".join(b"".join(self._err).strip().splitlines()[-3:]).decode("utf-8", "replace")

    def _failure(self, what: str) -> RenderError:
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            ffmpeg.terminate(self.proc)
        for t in self._threads:
            t.join(timeout=2)
        rc = self.proc.returncode
        grown = self._grown()
        if grown is not None:
            return grown
        err = ffmpeg.failure("segment encoder", rc, self._tail(), target=self.dest)
        if type(err) is RenderError and err.code == "encoder_failed":
            err = RenderError("encoder_failed", f"segment encoder {what} (exit {rc}): {self._tail()[:400]}")
        return err

    def _grown(self) -> RenderError | None:
        """input_too_large if the decoder refused pictures that grew past ECG_MAX_PIXELS (it
        may go on with the frames it can decode, so a short segment is checked for this too)."""
        grown = next((ln for ln in self._err if b"exceeds specified max pixel count" in ln), None)
        if grown is None:
            return None
        size_said = grown.split(b"Picture size ")[-1].split(b" ")[0].decode("ascii", "replace")
        return RenderError("input_too_large", f"the video's pictures grow to {size_said}, over the limit of "
                                              f"{self.max_pixels} pixels (ECG_MAX_PIXELS)")

    def _close_input(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._mux.close()
        except Exception:  # noqa: BLE001 - FFmpeg gone: its exit status says why
            pass
        try:
            self._stdin.close()
        except OSError:
            pass

    def finish(self) -> int:
        """No more captions: wait for the segment. Returns the frames encoded (all of them)."""
        self._close_input()
        rc = self.proc.wait()
        for t in self._threads:
            t.join(timeout=5)
        if rc != 0:
            raise self._failure("failed")
        if self.encoded != self.frames:
            grown = self._grown()
            if grown is not None:
                raise grown
            tail = self._tail()
            raise RenderError("invalid_input", f"source ended early: got {self.encoded} of {self.frames} frames"
                                               + (f" ({tail[:300]})" if tail else ""))
        return self.encoded

    def abort(self) -> None:
        try:
            self._stdin.close()  # a blocked write in the muxer fails at once
        except OSError:
            pass
        ffmpeg.terminate(self.proc)
        self._closed = True
        for t in self._threads:
            t.join(timeout=2)


class BurnProcess(PictureProcess):
    """FFmpeg rendering output frames [first_src, first_src + frames) of ``path`` into ``dest``,
    the pictures burnt in."""

    def __init__(self, path: str, src: ProbeResult, out: OutputFormat, enc: EncoderSettings, first_src: int,
                 frames: int, dest: str, hwdec: str = "none", threads: int = 0, enable: str | None = None,
                 nice: int = 0, on_frames: Callable[[int], None] = lambda n: None, dec_threads: int = 0,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        rate = f"{out.fps_num}/{out.fps_den}"
        main = [*source_filters(src, out), f"format={out.pix_fmt}"]
        # Frame-numbered timestamps on the output grid: the overlay pictures carry the same ones.
        main += [f"settb=expr={out.fps_den}/{out.fps_num}", "setpts=N", f"fps={rate}"]
        # The pictures are a band of the frame's bottom rows (begin()), or the whole frame.
        if enable not in (None, "0") and not timeline_usable(ffmpeg.version()):
            enable = None  # "0" (no captions at all) is the same on every frame, so it stays
        # (HDR kept: blended at 10 bits; the pictures, 8-bit in the HDR signal, are widened)
        over = (f"overlay=x=0:y=main_h-overlay_h:format={'yuv420p10' if out.is_hdr else 'yuv420'}:alpha=straight:"
                "eof_action=repeat"
                + (f":enable='{enable}'" if enable else ""))
        # The pictures are drawn in the output's colours (composite.to_yuva): tagged so, else
        # FFmpeg would convert each one as if BT.601.
        tags = "setparams=colorspace={}:range={}".format(*out_colors(out))
        graph = f"[0:v:0]{','.join(main)}[m];[1:v:0]{tags}[o];[m][o]{over},{tags_filter(out)}[v]"
        args = ["-loglevel", "error"]
        if hwdec == "cuda":
            args += ["-hwaccel", "cuda"]
        args += [*seek_args(src, first_src), "-max_pixels", str(max_pixels),
                 *decoder_threads(dec_threads), "-i", path,
                 # The overlay stream: read at once (no probing: the first picture may come late),
                 # few pictures queued (each up to a whole frame).
                 "-probesize", "32", "-analyzeduration", "0", "-thread_queue_size", "4",
                 "-f", "nut", "-i", "pipe:0",
                 "-filter_complex", graph, "-map", "[v]", "-an", "-sn", "-dn",
                 "-frames:v", str(frames), *encoder_args(enc, out)]
        if threads:
            args += ["-threads", str(threads)]
        args += ["-video_track_timescale", str(timescale(out)), "-progress", "pipe:1", "-stats_period", "0.5",
                 "-nostats", "-f", "mp4", "-y", dest]
        self._start(args, out, frames, dest, nice, on_frames, max_pixels)
