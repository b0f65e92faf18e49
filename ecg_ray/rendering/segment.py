"""Render one segment: decode the source range, composite caption overlays, encode.

The browser seeks and captures in the event loop; a writer thread takes its overlays in frame
order. Where the segment's frames are its source frames one for one (the usual case), the
writer hands each changed overlay to one FFmpeg that decodes, burns in and encodes (burn.py).
Otherwise FFmpeg decodes into a pipe, the writer composites each frame and feeds an encoder.
Queues between the stages are bounded, so memory does not grow with the video's length;
nothing is ever dropped (a full queue makes the producer wait).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel

from ecg_ray.capture.browser import CaptionPage
from ecg_ray.capture.overlay import OverlayEvent, covered_frames, lane_ranges, prepare_page, walk_events
from ecg_ray.config import DEFAULT_MAX_PIXELS
from ecg_ray.errors import Cancelled, RenderError
from ecg_ray.media import burn, composite
from ecg_ray.media.alpha import AlphaFormat, AlphaProcess
from ecg_ray.media.decode import SourceFrames, resolve_hwdec
from ecg_ray.media.encode import EncoderProcess
from ecg_ray.media.models import ContainerName, EncoderSettings, OutputFormat, ProbeResult
from ecg_ray.rendering.models import SegmentResult, SegmentSpec
from ecg_ray.rendering.plan import source_frame_map
from ecg_ray.scenario.model import Scenario

log = logging.getLogger(__name__)

QUEUE_DEPTH = 48
PREPARE_THREADS = 2  # overlays prepared at once, ahead of the encoder's thread


class JobSpec(BaseModel):
    """Everything a segment actor needs to render any segment of a job."""

    job_id: str
    probe: ProbeResult
    out: OutputFormat
    encoder: EncoderSettings
    scenario: Scenario
    hwdec: str = "none"          # ECG_HWDEC: none | cuda | auto (resolved on the segment's node)
    capture_margin: int = 24
    encoder_threads: int = 0
    decoder_threads: int = 0
    burn_in_ffmpeg: bool = True
    overlay_band: bool = True
    encoder_nice: int = 0
    capture_lanes: int = 1
    lane_hold_bytes: int = 32 << 20
    container: ContainerName = "mp4"   # the joined file's (containers.py); segments are always MP4
    max_pixels: int = DEFAULT_MAX_PIXELS  # ECG_MAX_PIXELS of the driver: the decoder refuses pictures that grow past it
    # Set: the segment is the captions alone over a transparent frame, in this container
    # (options.alpha_video; media/alpha.py), not the video
    alpha: AlphaFormat | None = None


def _next_event(events: "queue.Queue[OverlayEvent | None]", cancel: threading.Event, n: int) -> OverlayEvent:
    """The overlay of frame ``n`` (they come in frame order); Cancelled when the job or the
    producer stopped."""
    if cancel.is_set():
        raise Cancelled()
    ev = events.get()
    if ev is None:
        raise Cancelled("overlay producer stopped")
    if ev.n != n:
        raise RenderError("internal_error", f"overlay for frame {ev.n} arrived at frame {n}")
    return ev


class _Writer(threading.Thread):
    """Composites overlays onto decoded frames and feeds the encoder, in output order."""

    def __init__(self, job: JobSpec, seg: SegmentSpec, source_path: str, out_path: str,
                 events: "queue.Queue[OverlayEvent | None]", cancel: threading.Event,
                 on_frames: Callable[[int], None], frame_map: list[int]) -> None:
        super().__init__(daemon=True, name=f"writer-{seg.job_id}-{seg.index}")
        self.job, self.seg, self.events, self.cancel = job, seg, events, cancel
        self.on_frames = on_frames
        self.frames = SourceFrames(source_path, job.probe, job.out, frame_map, hwdec=job.hwdec,
                                   threads=job.decoder_threads, max_pixels=job.max_pixels)
        self.out_path = out_path
        self.error: BaseException | None = None
        self.written = 0

    def run(self) -> None:
        out = self.job.out
        enc = EncoderProcess(self.out_path, self.job.encoder, out, threads=self.job.encoder_threads,
                             nice=self.job.encoder_nice)
        current: composite.Overlay | None = None
        last_report = time.monotonic()
        it = iter(self.frames)  # a generator: the decoder starts at the first frame asked for
        try:
            for n in range(self.seg.start_frame, self.seg.end_frame):
                ev = _next_event(self.events, self.cancel, n)
                frame = next(it)
                if ev.kind == "empty":
                    current = None
                elif ev.kind == "new":
                    current = (ev.prepared.result() if ev.prepared is not None
                               else composite.prepare(ev.png, ev.x, ev.y, out.caption_colors))
                if current is not None:
                    frame = bytearray(frame)  # the decoder may hand the same buffer out twice
                    composite.blend(frame, out.width, out.height, current)
                enc.write(frame)
                self.written += 1
                now = time.monotonic()
                if now - last_report >= 0.5:
                    self.on_frames(self.written)
                    last_report = now
            enc.finish()
            self.on_frames(self.written)
        except BaseException as exc:  # noqa: BLE001 - handed to the event loop
            self.error = exc
            enc.abort()
        finally:
            it.close()  # stops the decoder process if frames are left


class BandMiss(Exception):
    """A capture reached above the overlay band chosen at the segment's first capture: the
    segment is rendered again with whole-frame overlay pictures."""


def band_top(first: composite.YuvaOverlay | None, out: OutputFormat) -> int:
    """The top row of the overlay band, from the segment's first visible capture: its top less
    its own height (at least an eighth of the frame), so captions that grow, bounce or stack
    above it still fit. No capture at all: a band of two rows."""
    if first is None:
        return out.height - 2
    return max(0, (first.y - max(first.h, out.height // 8)) // 2 * 2)


class _BurnWriter(threading.Thread):
    """Takes overlays in frame order and hands each change to the segment's FFmpeg (burn.py).

    The pictures cover a band of the frame down to its bottom, sized at the first capture
    (``band``; else the whole frame): for bottom captions about a third of the frame (31% in
    the benchmark), and so is the cost of moving each picture to FFmpeg and of blending it
    there, on every frame."""

    def __init__(self, job: JobSpec, seg: SegmentSpec, source_path: str, out_path: str,
                 events: "queue.Queue[OverlayEvent | None]", cancel: threading.Event,
                 on_frames: Callable[[int], None], first_src: int, band: bool = True) -> None:
        super().__init__(daemon=True, name=f"burn-{seg.job_id}-{seg.index}")
        self.job, self.seg, self.events, self.cancel = job, seg, events, cancel
        self.on_frames = on_frames
        self.source_path, self.out_path, self.first_src = source_path, out_path, first_src
        self.band = band
        self.rows = 0  # the pictures' height, once chosen
        self.error: BaseException | None = None
        self.written = 0
        self.proc: burn.PictureProcess | None = None

    def run(self) -> None:
        try:
            self._feed()
            assert self.proc is not None
            self.written = self.proc.finish()
            self.on_frames(self.written)
        except BaseException as exc:  # noqa: BLE001 - handed to the event loop
            self.error = exc
            if self.proc is not None:
                self.proc.abort()

    def _feed(self) -> None:
        job, seg, out = self.job, self.seg, self.job.out
        enable = burn.enable_expr(covered_frames(job.scenario, out, seg.start_frame, seg.end_frame))
        self.proc = burn.BurnProcess(
            self.source_path, job.probe, out, job.encoder, self.first_src, seg.frames, self.out_path,
            hwdec=job.hwdec, threads=job.encoder_threads, enable=enable, nice=job.encoder_nice,
            on_frames=self.on_frames, dec_threads=job.decoder_threads, max_pixels=job.max_pixels)
        canvas: composite.OverlayCanvas | None = None
        last = seg.end_frame - 1
        for n in range(seg.start_frame, seg.end_frame):
            ev = _next_event(self.events, self.cancel, n)
            ov = None
            if ev.kind == "new":
                ov = (ev.prepared.result() if ev.prepared is not None
                      else composite.to_yuva(ev.png, ev.x, ev.y, out.caption_colors))
            changed = False
            if canvas is None:
                # The band is sized at the first visible capture (FFmpeg, started early,
                # waits for it); until then the overlay is transparent.
                if ov is None and n < last:
                    continue
                top = band_top(ov, out) if self.band else 0
                self.rows = out.height - top
                canvas = composite.OverlayCanvas(out.width, self.rows, top)
                self.proc.begin(self.rows)
                if n > seg.start_frame:
                    self.proc.write(0, canvas.buf)
                changed = True
            if ev.kind == "new":
                if ov is not None and not canvas.fits(ov):
                    raise BandMiss(f"frame {n}: a caption at row {ov.y} is above the overlay band (row {canvas.top})")
                canvas.paint(ov)
                changed = True
            elif ev.kind == "empty" and not canvas.empty:
                canvas.clear()
                changed = True
            if changed:
                self.proc.write(n - seg.start_frame, canvas.buf)

    def stop(self) -> None:
        """Unblock a write into a full pipe (cancel)."""
        if self.proc is not None:
            self.proc.abort()


class _AlphaWriter(_BurnWriter):
    """The captions alone (JobSpec.alpha): each change of the overlay, painted on a transparent
    whole frame, goes to an FFmpeg that encodes them with their alpha (media/alpha.py). No
    source is read."""

    def __init__(self, job: JobSpec, seg: SegmentSpec, out_path: str, events: "queue.Queue[OverlayEvent | None]",
                 cancel: threading.Event, on_frames: Callable[[int], None]) -> None:
        super().__init__(job, seg, "", out_path, events, cancel, on_frames, 0, band=False)
        self.name = f"alpha-{seg.job_id}-{seg.index}"

    def _feed(self) -> None:
        job, seg, out = self.job, self.seg, self.job.out
        assert job.alpha is not None
        proc = self.proc = AlphaProcess(out, job.alpha, seg.frames, self.out_path, threads=job.encoder_threads,
                                        nice=job.encoder_nice, on_frames=self.on_frames)
        proc.begin(out.height)
        canvas = composite.OverlayCanvas(out.width, out.height)
        for n in range(seg.start_frame, seg.end_frame):
            ev = _next_event(self.events, self.cancel, n)
            changed = ev.kind == "new" or (ev.kind == "empty" and not canvas.empty)
            if ev.kind == "new":
                canvas.paint(ev.prepared.result() if ev.prepared is not None
                             else composite.to_yuva(ev.png, ev.x, ev.y, out.caption_colors))
            elif changed:
                canvas.clear()
            # The first frame, every change, and the last frame (the end of the last picture's
            # time); a frame the same as the one before is repeated by FFmpeg.
            if changed or n in (seg.start_frame, seg.end_frame - 1):
                proc.write(n - seg.start_frame, canvas.buf)


async def render_segment(
    page: CaptionPage,
    job: JobSpec,
    seg: SegmentSpec,
    source_path: str,
    out_path: str,
    cancel: threading.Event,
    on_frames: Callable[[int], None] = lambda n: None,
    band: bool | None = None,
) -> SegmentResult:
    """Render frames [seg.start_frame, seg.end_frame) of the job into ``out_path``.

    ``band`` (default: job.overlay_band): on the burn path, overlay pictures cover a band at the
    frame's bottom; a caption found above it has the segment rendered again whole-frame."""
    t0 = time.monotonic()
    band = job.overlay_band if band is None else band
    if job.hwdec != "none":
        # auto -> what this node has (a test decode, once per process); cuda where it has none: an error.
        hwdec = await asyncio.get_running_loop().run_in_executor(None, resolve_hwdec, job.hwdec)
        if hwdec != job.hwdec:
            job = job.model_copy(update={"hwdec": hwdec})
    try:
        res = await _render(page, job, seg, source_path, out_path, cancel, on_frames, band)
    except BandMiss as miss:
        log.info("caption above the overlay band; segment rendered again with whole-frame pictures",
                 extra={"job_id": job.job_id, "segment": seg.index, "why": str(miss)})
        res = await _render(page, job, seg, source_path, out_path, cancel, on_frames, False)
        res.band_misses = 1
    res.seconds = time.monotonic() - t0
    res.hwdec = job.hwdec
    return res


async def _render(page: CaptionPage, job: JobSpec, seg: SegmentSpec, source_path: str, out_path: str,
                  cancel: threading.Event, on_frames: Callable[[int], None], band: bool) -> SegmentResult:
    t0 = time.monotonic()
    events: queue.Queue[OverlayEvent | None] = queue.Queue(maxsize=QUEUE_DEPTH)
    frame_map = source_frame_map(job.probe, job.out, seg.start_frame, seg.end_frame)
    writer: _Writer | _BurnWriter
    prepare: Callable[..., composite.Overlay | composite.YuvaOverlay | None]
    if job.alpha is not None:
        writer = _AlphaWriter(job, seg, out_path, events, cancel, on_frames)
        prepare = composite.to_yuva
    elif job.burn_in_ffmpeg and burn.is_one_for_one(frame_map):
        writer = _BurnWriter(job, seg, source_path, out_path, events, cancel, on_frames, frame_map[0], band)
        prepare = composite.to_yuva
    else:
        writer = _Writer(job, seg, source_path, out_path, events, cancel, on_frames, frame_map)
        prepare = composite.prepare
    writer.start()  # FFmpeg opens the source and seeks while the page loads
    # Overlays are decoded and converted (composite.prepare: PNG inflate, colour matrix) in a
    # pool as they are captured, so the encoder's thread only blends: measured on the H100 at
    # 1080p, preparing them in that thread made a captioned segment twice as slow as a bare one.
    prep = ThreadPoolExecutor(max_workers=PREPARE_THREADS, thread_name_prefix="ecg-prepare")
    counts = {"new": 0, "same": 0, "empty": 0, "screenshots": 0}
    ranges = lane_ranges(seg.start_frame, seg.end_frame, job.capture_lanes)
    try:
        warnings = await prepare_page(page, job.scenario, job.out, seg.start_frame, [a for a, _ in ranges])
        events_in = walk_events(page, job.out, ranges, job.capture_margin, job.scenario, prepare, prep,
                                job.lane_hold_bytes, counts)
        async for ev in events_in:
            counts[ev.kind] += 1
            if ev.kind == "new" and ev.prepared is None:
                ev.prepared = prep.submit(prepare, ev.png, ev.x, ev.y, job.out.caption_colors)
            backoff = 0.002
            while True:
                if writer.error is not None or not writer.is_alive():
                    break
                if cancel.is_set():
                    raise Cancelled()
                try:
                    events.put_nowait(ev)
                    break
                except queue.Full:
                    # The browser is ahead of the encoder: wait without spinning the loop.
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 0.05)
            if writer.error is not None or not writer.is_alive():
                break
        while writer.is_alive():
            await asyncio.sleep(0.05)
    except BaseException:
        cancel_writer(writer, events)
        raise
    finally:
        prep.shutdown(wait=False, cancel_futures=True)
    if writer.error is not None:
        raise writer.error
    if writer.written != seg.frames:
        raise RenderError("internal_error", f"segment {seg.index} wrote {writer.written} of {seg.frames} frames")
    return SegmentResult(
        index=seg.index, frames=seg.frames, captured=counts["new"],
        screenshots=counts["screenshots"] if len(ranges) > 1 else counts["new"], reused=counts["same"],
        empty=counts["empty"], seconds=time.monotonic() - t0, warnings=warnings,
        overlay_rows=writer.rows if isinstance(writer, _BurnWriter) else 0,
    )


def cancel_writer(writer: _Writer | _BurnWriter, events: queue.Queue) -> None:
    """Stop the writer thread (and with it the decoder and encoder processes).

    A fresh event, not the job's: setting the job's would also cancel a retry of this segment.
    """
    stop = threading.Event()
    stop.set()
    writer.cancel = stop
    try:
        while True:
            events.get_nowait()
    except queue.Empty:
        pass
    try:
        events.put_nowait(None)
    except queue.Full:
        pass
    if isinstance(writer, _BurnWriter):
        writer.stop()
    writer.join(timeout=15)
