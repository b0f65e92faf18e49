"""Pydantic models for everything that crosses a process or network boundary."""

from __future__ import annotations

from fractions import Fraction
from typing import Literal, Optional

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, computed_field, field_validator

EncoderName = Literal["auto", "libx264", "h264_nvenc"]
# The file a job writes: MP4 (the default) and QuickTime MOV carry H.264 and AAC; WebM carries
# VP9 and Opus (concat.CONTAINERS says how each is written).
ContainerName = Literal["mp4", "mov", "webm"]


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


# -- The service (HTTP API, job registry, Python client) -------------------------------------

JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
RESERVED_JOB_IDS = frozenset({"queue"})
JobState = Literal["queued", "processing", "completed", "failed", "cancelled"]
TERMINAL_STATES = ("completed", "failed", "cancelled")


class JobOptions(BaseModel):
    """``options`` of a job submitted to the service, in the ranges the platform's backend allows
    (its editor always sends ``{width: 1920, height: 1080, fps: 30, quality: 90, format: "mp4"}``).

    A key this service does not know is not an error: the job runs, and the key is named in its
    warnings (``unknown``) and log. Unset sizes and rate follow the source."""

    model_config = ConfigDict(extra="allow")

    width: Optional[int] = Field(None, ge=480, le=3840)
    height: Optional[int] = Field(None, ge=360, le=2160)
    fps: Optional[float] = Field(None, ge=1, le=60)
    quality: Optional[int] = Field(None, ge=10, le=100)
    format: ContainerName = "mp4"
    encoder: EncoderName = "auto"
    segments: Optional[int] = Field(None, ge=1, le=1024)

    def unknown(self) -> list[str]:
        """The keys given that are not options of this service, sorted."""
        return sorted(self.model_extra or {})

    def warnings(self) -> list[str]:
        return [f"options.{k} is not an option of this service; ignored" for k in self.unknown()]

    def render_options(self) -> RenderOptions:
        return RenderOptions(**self.model_dump(exclude=set(self.unknown())))


class RenderRequest(BaseModel):
    """A job as platforms send it: the seed's snake_case body, or the camelCase one of ``/render``."""

    # Unknown fields are ignored: existing backends send extra keys we must not refuse.
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    job_id: Optional[str] = Field(None, validation_alias=AliasChoices("job_id", "jobId"), pattern=JOB_ID_PATTERN)
    video_url: str = Field(..., validation_alias=AliasChoices("video_url", "videoUrl"), min_length=1, max_length=4096)
    scenario: dict = Field(..., description="MotionText scenario (v2.0, v1.3, or the simple cue list)")
    options: JobOptions = Field(default_factory=JobOptions)
    callback_url: Optional[str] = Field(None, validation_alias=AliasChoices("callback_url", "callbackUrl"), max_length=4096)

    @field_validator("video_url", mode="before")
    @classmethod
    def _video_url_given(cls, v: object) -> object:
        # One backend version sends "videoUrl": null: say so plainly, not "not a valid string".
        if v is None:
            raise ValueError("video_url (videoUrl) is null: the URL of the video to caption is required")
        return v

    @field_validator("options", mode="before")
    @classmethod
    def _options_null(cls, v: object) -> object:
        return {} if v is None else v

    @field_validator("job_id")
    @classmethod
    def _job_id_not_reserved(cls, v: Optional[str]) -> Optional[str]:
        # /api/render/queue/status is the queue's: a job of that name could not be looked up.
        if v in RESERVED_JOB_IDS:
            raise ValueError(f"job_id {v!r} is reserved (its status URL is the queue's); choose another")
        return v

    @field_validator("scenario", mode="before")
    @classmethod
    def _scenario_text(cls, v: object) -> object:
        # Some backends send the scenario as a JSON string.
        if isinstance(v, (str, bytes)):
            import json

            try:
                v = json.loads(v)
            except (ValueError, RecursionError) as exc:
                raise ValueError(f"scenario is not valid JSON: {str(exc)[:200]}") from None
        if isinstance(v, dict):
            from pydantic_core import PydanticCustomError

            from .scenario import tree_problem

            # Here, before anything walks the scenario recursively: the ingress serializes the
            # request (pydantic stops at ~255 levels with a ValueError, a 500) and Ray pickles
            # it; a lone surrogate makes the fingerprint's UTF-8 encoding fail. The error type
            # makes the answer's error_code invalid_scenario (api._invalid).
            problem = tree_problem(v)
            if problem is not None:
                raise PydanticCustomError("invalid_scenario", "{path}: {problem}",
                                          {"path": problem[0], "problem": problem[1]})
        return v

    def fingerprint(self) -> str:
        """Identity of the work asked for (job_id aside): a resubmission must match it."""
        import hashlib
        import json

        body = self.model_dump(mode="json", exclude={"job_id"})
        return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class JobOutput(BaseModel):
    """What a finished job produced (also what ``ray.get(ecg_ray.submit(...))`` returns)."""

    job_id: str
    download_url: str
    location: str              # local path or s3://bucket/key
    file_size: int
    duration: float
    frames: int
    width: int
    height: int
    fps: float
    encoder: str
    segments: int
    render_seconds: float
    warnings: list[str] = []


class JobError(BaseModel):
    code: str
    message: str


class JobStatus(BaseModel):
    job_id: str
    state: JobState
    progress: float = 0.0      # 0-100, never decreases
    frames_done: int = 0
    frames_total: int = 0
    # Whole seconds left, from the job's measured rate (eta.py); None until it can be told.
    estimated_time_remaining: Optional[int] = None
    message: str = ""
    created_at: float
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    queue_position: Optional[int] = None   # 1 = next to start
    result: Optional[JobOutput] = None
    error: Optional[JobError] = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status(self) -> JobState:
        """The state under the name the callbacks use (``status``), for clients that read that."""
        return self.state


class SubmitAnswer(JobStatus):
    """The answer to an accepted submission (HTTP 200): the job's status, and whether this
    submission created it (False: the same job_id and body again, the existing job)."""

    created: bool


class QueueStatus(BaseModel):
    queued: list[str]          # in start order
    running: list[str]
    max_concurrent_jobs: int
    max_queued_jobs: int
    cluster: dict[str, float]  # Ray cluster resources
    available: dict[str, float]
