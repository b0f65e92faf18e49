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


# What a source's pictures are (colours.dynamic_range): SDR, or HDR by its transfer function.
DynamicRange = Literal["sdr", "hlg", "pq"]


class MasteringDisplay(BaseModel):
    """SMPTE ST 2086: the display the HDR picture was graded on (chromaticities as CIE 1931 xy)."""

    red: tuple[float, float] = (0.0, 0.0)
    green: tuple[float, float] = (0.0, 0.0)
    blue: tuple[float, float] = (0.0, 0.0)
    white_point: tuple[float, float] = (0.0, 0.0)
    min_luminance: float = 0.0   # cd/m2
    max_luminance: float = 0.0   # cd/m2


class ContentLight(BaseModel):
    """CTA-861.3 content light level: the brightest pixel and frame-average of the video (cd/m2)."""

    max_cll: int = 0
    max_fall: int = 0


class DolbyVision(BaseModel):
    """The Dolby Vision configuration record of an MP4/MOV track (dvcC/dvvC box)."""

    profile: int
    level: int
    rpu: bool
    enhancement_layer: bool
    base_layer: bool
    # 0: no base layer a player without Dolby Vision can show (profile 5); 1: HDR10 (PQ);
    # 2: SDR; 4: HLG (profile 8.4, iPhones).
    bl_compatibility_id: int


class HdrMetadata(BaseModel):
    mastering_display: MasteringDisplay | None = None
    content_light: ContentLight | None = None
    dolby_vision: DolbyVision | None = None
    hdr10_plus: bool = False   # dynamic metadata (SMPTE ST 2094-40) on the first frame


class ColorInfo(BaseModel):
    """A video's colours as a job's result reports them (FFmpeg's names; "" where not said)."""

    dynamic_range: DynamicRange = "sdr"
    colorspace: str = ""       # the Y'CbCr matrix
    color_primaries: str = ""
    color_trc: str = ""        # the transfer characteristic
    color_range: str = ""
    bit_depth: int = 8
    pix_fmt: str = ""
    hdr: HdrMetadata | None = None


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
    color_primaries: str = ""
    color_trc: str = ""        # transfer characteristic: smpte2084 = PQ, arib-std-b67 = HLG
    bit_depth: int = 8         # of the decoded pictures (10 for HDR phone video)
    pix_fmt: str = ""          # of the decoded pictures, FFmpeg's name (yuv420p10le, ...)
    hdr: HdrMetadata | None = None  # mastering display, content light level, Dolby Vision record
    audio: list[AudioStream] = []
    size_bytes: int = 0

    @property
    def fps(self) -> Fraction:
        return Fraction(self.fps_num, self.fps_den)

    @property
    def dynamic_range(self) -> DynamicRange:
        """PQ or HLG by the transfer tag; a Dolby Vision stream by its base layer's
        compatibility (the tags of a profile 8.4 stream say HLG already)."""
        if self.color_trc == "smpte2084":
            return "pq"
        if self.color_trc == "arib-std-b67":
            return "hlg"
        dv = self.hdr.dolby_vision if self.hdr else None
        if dv is not None and dv.bl_compatibility_id in (1, 4):
            return "pq" if dv.bl_compatibility_id == 1 else "hlg"
        return "sdr"

    def color_info(self) -> ColorInfo:
        return ColorInfo(dynamic_range=self.dynamic_range, colorspace=self.colorspace,
                         color_primaries=self.color_primaries, color_trc=self.color_trc,
                         color_range=self.color_range, bit_depth=self.bit_depth, pix_fmt=self.pix_fmt,
                         hdr=self.hdr)


class OutputFormat(BaseModel):
    """The output grid every segment renders on."""

    width: int
    height: int
    fps_num: int
    fps_den: int
    frame_count: int
    matrix: Literal["bt709", "bt601", "bt2020"] = "bt709"
    colorspace: str = ""       # the tag written (FFmpeg's name); "" = the matrix's usual one
    # "sdr": 8-bit H.264/VP9 (HDR sources tone-mapped). "pq"/"hlg": HDR kept (options.dynamic_range
    # "hdr"): 10-bit HEVC in the source's transfer, BT.2020, with its mastering display and
    # content light level (``hdr``).
    dynamic_range: DynamicRange = "sdr"
    hdr: HdrMetadata | None = None

    @property
    def is_hdr(self) -> bool:
        return self.dynamic_range != "sdr"

    @property
    def pix_fmt(self) -> str:
        return "yuv420p10le" if self.is_hdr else "yuv420p"

    @property
    def bit_depth(self) -> int:
        return 10 if self.is_hdr else 8

    @property
    def colorspace_tag(self) -> str:
        if self.is_hdr:
            return "bt2020nc"
        return self.colorspace or ("bt709" if self.matrix == "bt709" else "smpte170m")

    @property
    def primaries_tag(self) -> str:
        if self.is_hdr:
            return "bt2020"
        return "bt709" if self.matrix == "bt709" else "smpte170m"

    @property
    def trc_tag(self) -> str:
        if self.is_hdr:
            return "smpte2084" if self.dynamic_range == "pq" else "arib-std-b67"
        return "bt709" if self.matrix == "bt709" else "smpte170m"

    @property
    def caption_colors(self) -> str:
        """How caption pictures are turned into this output's Y'CbCr (composite.py): the SDR
        matrix, or BT.2020 with the HDR transfer ("bt2020-pq", "bt2020-hlg")."""
        return f"bt2020-{self.dynamic_range}" if self.is_hdr else self.matrix

    def color_info(self) -> ColorInfo:
        """The colours written, as the job's result reports them."""
        return ColorInfo(dynamic_range=self.dynamic_range, colorspace=self.colorspace_tag,
                         color_primaries=self.primaries_tag, color_trc=self.trc_tag, color_range="tv",
                         bit_depth=self.bit_depth, pix_fmt=self.pix_fmt, hdr=self.hdr)

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
    codec: Literal["libx264", "h264_nvenc", "libvpx-vp9", "libx265"]
    quality: int = Field(70, ge=0, le=100)
    preset: str = "veryfast"

    @field_validator("preset")
    @classmethod
    def _safe_preset(cls, v: str) -> str:
        if not v.replace("-", "").isalnum():
            raise ValueError("preset must be alphanumeric")
        return v
