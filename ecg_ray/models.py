"""Pydantic models for everything that crosses a process or network boundary."""

from __future__ import annotations

from fractions import Fraction
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

EncoderName = Literal["auto", "libx264", "h264_nvenc"]


class RenderOptions(BaseModel):
    """What the caller may ask of a render. Unset fields follow the source."""

    model_config = ConfigDict(extra="forbid")

    width: Optional[int] = Field(None, ge=16, le=7680)
    height: Optional[int] = Field(None, ge=16, le=4320)
    fps: Optional[float] = Field(None, gt=0, le=240)
    quality: Optional[int] = Field(None, ge=0, le=100)
    encoder: EncoderName = "auto"
    segments: Optional[int] = Field(None, ge=1, le=1024)


class AudioStream(BaseModel):
    index: int
    codec: str
    channels: int = 0
    sample_rate: int = 0
    start: float = 0.0


class ProbeResult(BaseModel):
    """The facts about a source video that planning needs."""

    path: str
    container: str
    codec: str
    width: int                 # display width (after rotation)
    height: int                # display height (after rotation)
    rotation: int = 0
    fps_num: int
    fps_den: int
    vfr: bool = False
    duration: float            # seconds of video, first frame to end of last
    frame_count: int           # source frames
    start: float               # first video frame's time on the container clock (seconds)
    frame_times: list[float]   # each source frame's presentation time, from ``start`` (sorted)
    colorspace: str = ""
    audio: list[AudioStream] = []
    size_bytes: int = 0

    @property
    def fps(self) -> Fraction:
        return Fraction(self.fps_num, self.fps_den)


class OutputFormat(BaseModel):
    """The output grid every segment renders on."""

    width: int
    height: int
    fps_num: int
    fps_den: int
    frame_count: int
    matrix: Literal["bt709", "bt601"] = "bt709"

    @property
    def fps(self) -> Fraction:
        return Fraction(self.fps_num, self.fps_den)

    def frame_time(self, n: int) -> float:
        return n * self.fps_den / self.fps_num

    def seek_time(self, n: int) -> float:
        """Where the caption page is seeked for frame n: a hair after the frame time, so that
        a cue starting at a frame time computed with float error (0.4 + 0.8) still shows
        on that frame. Cue ends are pulled in by 1e-6 (scenario.END_EPSILON), more than this."""
        return self.frame_time(n) + 1e-7


class EncoderSettings(BaseModel):
    codec: Literal["libx264", "h264_nvenc"]
    quality: int = Field(70, ge=0, le=100)
    preset: str = "veryfast"

    @field_validator("preset")
    @classmethod
    def _safe_preset(cls, v: str) -> str:
        if not v.replace("-", "").isalnum():
            raise ValueError("preset must be alphanumeric")
        return v


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
    reused: int                # frames whose overlay was unchanged (no capture)
    empty: int                 # frames with no caption at all
    seconds: float
    node_id: str = ""
    browser_restarts: int = 0  # Chromium died mid-segment and the segment was rendered again
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
