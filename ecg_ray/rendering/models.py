"""What a caller asks of a render and what it gets back; one segment's spec and result."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from ecg_ray.media.alpha import AlphaFormat
from ecg_ray.media.models import ColorInfo, ContainerName, EncoderName


class RenderOptions(BaseModel):
    """What the caller may ask of a render. Unset fields follow the source."""

    model_config = ConfigDict(extra="forbid")

    width: Optional[int] = Field(None, ge=16, le=7680)
    height: Optional[int] = Field(None, ge=16, le=4320)
    # At least 1/1000: plan.py keeps the rate as a fraction with a denominator of at most 1001,
    # and anything below 1/2002 became 0 fps (a ZeroDivisionError once the job ran).
    fps: Optional[float] = Field(None, ge=0.001, le=240)
    quality: Optional[int] = Field(None, ge=0, le=100)
    encoder: EncoderName = "auto"
    segments: Optional[int] = Field(None, ge=1, le=1024)
    format: ContainerName = "mp4"
    # With both width and height: "exact" scales to that size whatever the source's shape;
    # "contain" keeps the source's aspect inside that box, turned to the source's orientation
    # (a portrait phone video in a 1920x1080 box comes out 1080x1920, not squeezed).
    fit: Literal["exact", "contain"] = "exact"
    # "sdr": every source comes out BT.709 SDR (HDR tone-mapped). "hdr": an HDR source (PQ, HLG)
    # keeps its HDR as 10-bit HEVC with its side data; an SDR source stays SDR.
    dynamic_range: Literal["sdr", "hdr"] = "sdr"
    # Also the captions alone with transparency, beside the output (media/alpha.py): WebM
    # (VP9 with alpha) or MOV (ProRes 4444). SDR outputs only.
    alpha_video: Optional[AlphaFormat] = None


class SegmentSpec(BaseModel):
    """One time segment: output frames [start_frame, end_frame)."""

    job_id: str
    index: int
    start_frame: int
    end_frame: int

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame


class SegmentResult(BaseModel):
    index: int
    frames: int
    captured: int              # overlays captured from the browser
    screenshots: int = 0       # screenshots taken for them (several lanes' overlays share one)
    reused: int                # frames whose overlay was unchanged (no capture)
    empty: int                 # frames with no caption at all
    seconds: float
    node_id: str = ""
    browser_restarts: int = 0  # Chromium died mid-segment and the segment was rendered again
    overlay_rows: int = 0      # height of the overlay pictures handed to FFmpeg (burn path; 0: the relay)
    band_misses: int = 0       # a caption came above the overlay band: rendered again whole-frame
    hwdec: str = "none"        # what decoded the source: "cuda" (NVDEC) or "none" (the CPU)
    actor_mb: int = 0          # PSS of the actor with its Chromium and Playwright's driver once the segment was done (MiB)
    warnings: list[str] = []


class RenderResult(BaseModel):
    job_id: str
    output: str                # path or URL of the result
    file_size: int
    duration: float
    frames: int
    width: int
    height: int
    fps: float
    encoder: str
    segments: int
    seconds: float
    nodes: list[str] = []      # Ray node of each segment, in segment order
    warnings: list[str] = []
    stats: dict[str, float] = {}
    source_color: Optional[ColorInfo] = None   # what the probe found (HDR form, side data)
    output_color: Optional[ColorInfo] = None   # what was written
    alpha_output: Optional[str] = None         # the captions-only file (options.alpha_video)
