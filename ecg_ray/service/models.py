"""The service's wire: one model per direction (the request in, the status and output out)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal, Optional

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, computed_field, field_validator

from ecg_ray.media.alpha import AlphaFormat
from ecg_ray.media.models import ColorInfo, ContainerName, EncoderName
from ecg_ray.rendering.models import RenderOptions, RenderResult
from ecg_ray.scenario.model import tree_problem

# -- The service (HTTP API, job registry, Python client) -------------------------------------

JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_JOB_ID = re.compile(JOB_ID_PATTERN[1:-1])


def valid_job_id(value: object) -> bool:
    """A job id: 1-64 of A-Z a-z 0-9 _ - (fullmatch: re's $ would let "abc\\n" through)."""
    return isinstance(value, str) and _JOB_ID.fullmatch(value) is not None


RESERVED_JOB_IDS = frozenset({"queue"})

# A tenant (auth.py): the owner of the jobs its API keys submit. "" is the tenant of the open
# mode (no keys configured), so a deployment without keys keeps its job ids as they were.
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
_TENANT = re.compile(TENANT_PATTERN[1:-1])


def valid_tenant(value: object) -> bool:
    return isinstance(value, str) and (value == "" or _TENANT.fullmatch(value) is not None)


def job_ref(tenant: str, job_id: str) -> str:
    """The job's key inside the service (job table, files, store, links): the job id, prefixed
    with its tenant and a dot (not a job-id character, so two tenants' refs never collide and
    the job id is always what follows the last dot)."""
    return f"{tenant}.{job_id}" if tenant else job_id


def split_ref(ref: str) -> tuple[str, str]:
    """(tenant, job_id) of a ``job_ref``."""
    tenant, _, job_id = ref.rpartition(".")
    return tenant, job_id


def valid_ref(value: object) -> bool:
    if not isinstance(value, str):
        return False
    tenant, job_id = split_ref(value)
    return valid_job_id(job_id) and valid_tenant(tenant) and (tenant != "" or "." not in value)


class JobState(StrEnum):
    """Where a job is. It only moves forward, by ``rank``: queued -> processing -> one of the
    three ends (a later answer of a lower rank is an old one)."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def rank(self) -> int:
        return {"queued": 0, "processing": 1}.get(self.value, 2)

    @property
    def terminal(self) -> bool:
        return self.rank == 2


TERMINAL_STATES = tuple(s for s in JobState if s.terminal)


class PosterOption(BaseModel):
    """``options.poster``: a still of the finished video, captions included."""

    model_config = ConfigDict(extra="forbid")

    at: float = Field(0.0, ge=0, le=86400, description="seconds into the video (past its end: the last frame)")
    format: Literal["jpeg", "png"] = "jpeg"


class AlphaVideoOption(BaseModel):
    """``options.alpha_video``: the captions alone with transparency, for players that composite
    them over the video themselves."""

    model_config = ConfigDict(extra="forbid")

    format: AlphaFormat = Field("webm", description="webm: VP9 with alpha; mov: ProRes 4444")


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
    # A service's client gives a size class, not a shape: the source's aspect is kept (plan.contain).
    fit: Literal["exact", "contain"] = "contain"
    # "hdr": an HDR phone video (HLG, HDR10) stays HDR (HEVC Main 10, MP4/MOV); default SDR.
    dynamic_range: Literal["sdr", "hdr"] = "sdr"
    # Files made beside the video, named in the result's ``files`` (not options of the render).
    poster: Optional[PosterOption] = None
    webvtt: bool = Field(False, description="the captions as WebVTT (text and times)")
    # The live preview (HLS of the finished prefix while the job runs; status preview_url).
    # None: the service's ECG_PREVIEW. Not an option of the render: it never changes the video.
    preview: Optional[bool] = None
    alpha_video: Optional[AlphaVideoOption] = None

    def unknown(self) -> list[str]:
        """The keys given that are not options of this service, sorted."""
        return sorted(self.model_extra or {})

    def warnings(self) -> list[str]:
        return [f"options.{k} is not an option of this service; ignored" for k in self.unknown()]

    def render_options(self) -> RenderOptions:
        return RenderOptions(**self.model_dump(exclude={*self.unknown(), *SIDE_OUTPUTS}),
                             alpha_video=self.alpha_video.format if self.alpha_video else None)


SIDE_OUTPUTS = ("poster", "webvtt", "preview", "alpha_video")


class RenderRequest(BaseModel):
    """A job as platforms send it: the seed's snake_case body, or the camelCase one of ``/render``."""

    # Unknown fields are ignored: existing backends send extra keys we must not refuse.
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    job_id: Optional[str] = Field(None, validation_alias=AliasChoices("job_id", "jobId"), pattern=JOB_ID_PATTERN)
    video_url: str = Field(..., validation_alias=AliasChoices("video_url", "videoUrl"), min_length=1, max_length=4096)
    scenario: dict[str, Any] = Field(..., description="MotionText scenario (v2.0, v1.3, or the simple cue list)")
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


class OutputFile(BaseModel):
    """A file made beside the video (``options.poster``, ``options.webvtt``, ``options.alpha_video``),
    stored beside it."""

    download_url: str
    location: str
    file_size: int
    content_type: str


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
    # Segments kept from before a restart and joined as they were, not rendered again.
    resumed_segments: int = 0
    # Segments taken from the segment cache (an earlier job made them, byte for byte as this
    # one would), not rendered again.
    reused_segments: int = 0
    rendered_by: str = ""      # the service instance that rendered it (ECG_INSTANCE)
    warnings: list[str] = []
    # The source's colours as probed (dynamic range, transfer, primaries, bit depth, HDR side
    # data) and the output's: HDR sources come out SDR unless options.dynamic_range is "hdr".
    source_color: Optional[ColorInfo] = None
    output_color: Optional[ColorInfo] = None
    # The files asked for beside the video, by kind: "poster", "webvtt".
    files: dict[str, OutputFile] = {}
    # Where the job's time went, in seconds: "prepare" (download, probe, scenario, define
    # assets), "plan" (the cut, actors, the segment cache), "segments", "join", "side_files",
    # "store". Queueing is started_at - created_at of the status.
    stages: dict[str, float] = {}

    @classmethod
    def of(cls, result: RenderResult, *, download_url: str, location: str, file_size: int,
           warnings: list[str] | None = None, rendered_by: str = "",
           files: dict[str, OutputFile] | None = None, stages: dict[str, float] | None = None) -> JobOutput:
        """The output of a job from its render's result and where the store put the file;
        ``warnings`` come before the render's own (the request's, e.g. unknown options)."""
        same = result.model_dump(include={"duration", "frames", "width", "height", "fps", "encoder",
                                          "segments", "source_color", "output_color"})
        # The render ran under the job's ref (tenant.job_id); the output names the client's id.
        return cls(**same, job_id=split_ref(result.job_id)[1], download_url=download_url, location=location, file_size=file_size,
                   render_seconds=round(result.seconds, 3),
                   resumed_segments=int(result.stats.get("resumed_segments", 0)),
                   reused_segments=int(result.stats.get("reused_segments", 0)), rendered_by=rendered_by,
                   warnings=[*(warnings or []), *result.warnings], files=files or {},
                   stages=_stages(result.stats, stages or {}))


def _stages(stats: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The render's stages from its stats, then the service's own (``after``), rounded to ms."""
    prepare, startup = stats.get("plan_s", 0.0), stats.get("startup_s", 0.0)
    own = {"prepare": prepare, "plan": max(0.0, startup - prepare), "segments": stats.get("segments_s", 0.0),
           "join": stats.get("join_s", 0.0), **after}
    return {k: round(v, 3) for k, v in own.items()}


class JobError(BaseModel):
    code: str
    message: str


class JobStatus(BaseModel):
    job_id: str
    # The job's owner (the API key's tenant); "" without keys. Job ids are unique per tenant.
    tenant: str = ""
    state: JobState
    progress: float = 0.0      # 0-100, never decreases
    frames_done: int = 0
    frames_total: int = 0
    # Whole seconds left, from the job's measured rate (eta.py); None until it can be told.
    estimated_time_remaining: Optional[int] = None
    # 1, and one more each time the same job (id and body) is submitted again after it failed or
    # was cancelled: a new attempt, with callbacks of its own.
    attempt: int = 1
    # Restarts of the service this attempt went on after (ECG_MAX_INTERRUPTIONS bounds it).
    interruptions: int = 0
    message: str = ""
    created_at: float
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    queue_position: Optional[int] = None   # 1 = next to start
    # Once the job is planned: its segments, and how many of them the segment cache had.
    segments: Optional[int] = None
    reused_segments: Optional[int] = None
    result: Optional[JobOutput] = None
    error: Optional[JobError] = None
    # The live preview's HLS playlist (a signed link, no key needed) once its first seconds can
    # play; it grows while the job renders and is removed ECG_PREVIEW_TTL_S after the job ended.
    preview_url: Optional[str] = None

    @property
    def ref(self) -> str:
        """The job's key inside the service (``job_ref``)."""
        return job_ref(self.tenant, self.job_id)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status(self) -> JobState:
        """The state under the name the callbacks use (``status``), for clients that read that."""
        return self.state


class JobList(BaseModel):
    """The caller's jobs, most recently submitted first (``GET /api/render/jobs``): a tenant's
    own; every tenant's for admin keys and the open mode (each status names its ``tenant``)."""

    jobs: list[JobStatus]
    # More jobs match than the ``limit`` asked for (the oldest of them are left out).
    more: bool = False


class SubmitAnswer(JobStatus):
    """The answer to an accepted submission (HTTP 200): the job's status, and whether this
    submission created it (False: the same job_id and body again, the existing job)."""

    created: bool


class SubmitOutcome(BaseModel):
    """The answer to a submission: an HTTP status code and the job, or what is wrong."""

    # 200 accepted (new, or the same job_id and body again: ``created`` tells), 409, 422, 429.
    # Accepted is 200, not 202: the platform's backend counts nothing else as accepted.
    code: int
    created: bool = False
    status: Optional[JobStatus] = None
    error: Optional[JobError] = None
    retry_after: Optional[int] = None


class QueueStatus(BaseModel):
    queued: list[str]          # in start order
    running: list[str]
    max_concurrent_jobs: int
    max_queued_jobs: int
    cluster: dict[str, float]  # Ray cluster resources
    available: dict[str, float]
    running_here: list[str] = []   # the jobs this instance renders (running: all instances')
    leases: dict[str, str] = {}    # running job -> the instance (and its run) rendering it; "": to be taken over
    # this instance: name, pid, the job table in use (kind, whether it answers), leases (Redis)
    instance: dict[str, Any] = {}
