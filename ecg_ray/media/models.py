"""The media facts that cross process boundaries: a probed source, the output grid, the encoder."""

from __future__ import annotations

from fractions import Fraction
from typing import Literal

from pydantic import BaseModel, Field, field_validator

EncoderName = Literal["auto", "libx264", "h264_nvenc"]
# The file a job writes: MP4 (the default) and QuickTime MOV carry H.264 and AAC; WebM carries
# VP9 and Opus (concat.CONTAINERS says how each is written).
ContainerName = Literal["mp4", "mov", "webm"]


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
    # Colour tags as FFmpeg names them ("" where the file does not say): decode.source_colors
    # states what untagged sources are taken to be, so FFmpeg converts only where needed.
    colorspace: str = ""
    color_range: str = ""
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
    colorspace: str = ""       # the tag written (FFmpeg's name); "" = the matrix's usual one

    @property
    def colorspace_tag(self) -> str:
        return self.colorspace or ("bt709" if self.matrix == "bt709" else "smpte170m")

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
    codec: Literal["libx264", "h264_nvenc", "libvpx-vp9"]
    quality: int = Field(70, ge=0, le=100)
    preset: str = "veryfast"

    @field_validator("preset")
    @classmethod
    def _safe_preset(cls, v: str) -> str:
        if not v.replace("-", "").isalnum():
            raise ValueError("preset must be alphanumeric")
        return v
