"""All configuration in one place: environment variables with documented defaults.

Names follow the seed service where it had them (S3_BUCKET, AWS_REGION, MAX_CONCURRENT_JOBS,
BACKEND_CALLBACK_URL); everything else is prefixed ECG_.
"""

from __future__ import annotations

import os
import tempfile
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MAX_PIXELS = 3840 * 2160  # ECG_MAX_PIXELS's default: 4K UHD


class Settings(BaseSettings):
    """Every setting of the service and the renderer, read from the environment once a process
    (``load_settings``) and passed down. Each variable is ``ECG_`` and the field's name in capitals,
    except the seed service's own names (MAX_CONCURRENT_JOBS, BACKEND_CALLBACK_URL, S3_BUCKET,
    AWS_REGION); values are validated when read, so a typo is an error naming the variable, not
    the default. ``Settings()`` with keyword arguments makes one in code (tests, tools)."""

    model_config = SettingsConfigDict(env_prefix="ECG_", env_ignore_empty=True, frozen=True, extra="ignore",
                                      populate_by_name=True)

    # Rendering
    x264_preset: str = Field("veryfast")
    default_quality: int = Field(70, description='0-100, higher is better')
    encoder: Literal["auto", "libx264", "h264_nvenc"] = Field("auto", description='auto | libx264 | h264_nvenc')
    hwdec: Literal["none", "cuda", "auto"] = Field("none", description="none | cuda | auto (NVDEC decoding; auto: where a test decode works on the segment's node, else the CPU)")
    segment_num_gpus: float = Field(0.25, description='used only when the cluster has GPUs')
    segment_num_cpus: float = Field(1.0)
    min_segment_seconds: float = Field(2.0, description='segments are not made shorter than this')
    segments_per_job: int = Field(16, ge=1, description="a job is cut into this many segments, fewer where they would be shorter than ECG_MIN_SEGMENT_SECONDS, whole multiples of it where longer than ECG_MAX_SEGMENT_SECONDS; never a function of the cluster's load, so the same video is always cut at the same frames (segment cache, preview)")
    max_segment_seconds: float = Field(20.0, description='a long job gets more segments (whole multiples of ECG_SEGMENTS_PER_JOB) so none is longer than this: the preview grows in steps of at most this, and an edit re-renders at most about this much; 0: no limit')
    max_segments: int = Field(64)
    capture_margin_px: int = Field(24, description='room for glows/shadows beyond boxes')
    burn_in_ffmpeg: bool = Field(True, description='a segment whose frames map one for one onto the source is decoded, captioned and encoded by one FFmpeg; 0: always the decode -> Python -> encode relay')
    overlay_band: bool = Field(True, description="burn path: overlay pictures cover a band down to the frame's bottom, sized at a segment's first caption, instead of the whole frame; a caption above it renders the segment again whole-frame")
    decoder_threads: int = Field(4, description="most threads of a segment's video decoder, at most one per core it may use plus one: FFmpeg's own choice, one per core plus one, holds frames per thread: 84 MB more at 1080p and 290 MB at 4K with 17 threads against 4, and no faster; 0: FFmpeg's choice")
    encoder_threads: int = Field(4, description="x264 threads per segment; 0: FFmpeg's own choice, 1.5 per core it sees, however many actors share them")
    capture_lanes: int = Field(8, description="a segment's frames are walked as this many runs at once, each by its own renderer in the page, and their changed captions captured together in one screenshot: a capture's fixed cost is shared; 1: one run, one capture per changed frame")
    lane_hold_mb: int = Field(32, description='converted captions of the runs ahead, held until the encoder reaches them; past this only the first run walks on')
    encoder_nice: int = Field(0, description="lower the segment encoders' CPU priority by this, so the browsers feeding them are not kept waiting")
    # Scheduling (pipeline.Renderer's shared actor pool; docs/operations.md "Scheduling")
    segment_nvenc: float = Field(1.0, description='units of the custom resource "nvenc" each segment actor asks for, as well as its GPU share, where the cluster advertises "nvenc" and ECG_ENCODER is not libx264; 0: never ask')
    actor_idle_s: float = Field(600.0, description='a segment actor idle this long is stopped so its node can scale down; 0: never')
    min_warm_actors: int = Field(1, description='segment actors kept however long they idle')
    actor_recycle_mb: int = Field(1024, description="a segment actor whose memory once a segment is done, PSS of it with its Chromium and Playwright's driver, is above this is replaced by a fresh one; 0: never")
    autoscale_requests: bool = Field(True, description='while segments wait for actors, ask the autoscaler for actor-sized bundles with request_resources; cleared when idle')
    # Limits on input
    max_input_bytes: int = Field(20 * 1024**3)
    max_duration_s: float = Field(4 * 3600.0)
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, description='output width*height')
    fetch_timeout_s: float = Field(60.0, description="a download that sends nothing this long fails; also the window its throughput is measured over")
    fetch_min_bytes_per_s: int = Field(16 * 1024, description="a download slower than this, averaged over each ECG_FETCH_TIMEOUT_S, fails (a server that drips a byte at a time)")
    store_deadline_s: float = Field(3600.0, description="an upload of a result to S3 still running after this long fails (storage_failed)")
    store_min_bytes_per_s: int = Field(64 * 1024, description="an upload of a result slower than this, averaged over each ECG_FETCH_TIMEOUT_S, fails (S3 stalled)")
    fetch_deadline_s: float = Field(3 * 3600.0, description="a download still running after this long fails, however fast it goes")
    # Limits on define assets (fonts, images a scenario's define section names; assets.py)
    max_asset_bytes: int = Field(20 * 1024**2, description='one asset')
    max_assets_total_bytes: int = Field(64 * 1024**2, description='all assets of one job together')
    max_assets: int = Field(32, description='distinct assets per job')
    asset_timeout_s: float = Field(20.0, description='fetching one asset, from connect to last byte')
    # Places
    tmp_dir: str = Field(tempfile.gettempdir())
    output_dir: str = Field("./ecg_output")
    ffmpeg: str = Field("", description="default: imageio-ffmpeg's binary")
    chromium: str = Field("", description="default: Playwright's, else the system's")
    web_vendor_dir: str = Field("", description='the npm page assets; default: capture/web/vendor, where setup copies them')
    chromium_args: str = Field("", description='extra Chromium flags, space separated; one of them --enable-gpu: the --disable-gpu default is dropped')
    # Service (used by the Serve app)
    max_concurrent_jobs: int = Field(4, validation_alias=AliasChoices("max_concurrent_jobs", "MAX_CONCURRENT_JOBS"), description='jobs rendering at once')
    max_queued_jobs: int = Field(100, description='waiting jobs; beyond this: 429')
    state_dir: str = Field("./ecg_state", description='SQLite job store')
    redis_url: str = Field("", validation_alias=AliasChoices("redis_url", "REDIS_URL"), description='the job table, queue and change feed in Redis (several service instances share them); empty: SQLite in ECG_STATE_DIR')
    redis_prefix: str = Field("ecg", description='namespace of the service\'s Redis keys (two services on one Redis: two prefixes)')
    redis_job_ttl_s: int = Field(7 * 86400, ge=60, description='an ended job\'s Redis keys expire after this')
    instance: str = Field("", description='this service instance\'s name in leases (Redis); empty: the host name. A restarted instance takes its own jobs back at once; another instance takes them after ECG_LEASE_S')
    lease_s: float = Field(15.0, gt=1, description='Redis: a running job\'s lease, renewed every third of it; an instance silent this long loses its jobs to another')
    link_secret: str = Field("", description='key of the local store\'s signed download links; empty: one made once and kept in the job table (ECG_STATE_DIR or Redis)')
    link_expiry_s: int = Field(7 * 86400, ge=60, description='a signed download link opens the file this long')
    segment_cache_mb: int = Field(4096, ge=0, description="segments of finished jobs kept in the store (.segment-cache beside the results, local or S3) so that a job that differs from an earlier one in some captions renders only the segments those captions reach; least recently used go beyond this size; 0: no cache")
    segment_cache_ttl_s: float = Field(7 * 86400.0, ge=0, description='a cached segment is removed this long after it was written (S3: after it was last used); 0: only the size limit')
    preview: bool = Field(True, description="a job's finished prefix is playable while it renders, as HLS beside its result (its preview_url); a job's options.preview overrides it")
    preview_ttl_s: int = Field(3600, ge=1, description="a job's preview files are removed this long after it ended")
    max_interruptions: int = Field(3, ge=0, description='restarts of the service a running job goes on after (from its kept segments); one more fails it with interrupted')
    # Who may do what (service/auth.py): with neither set, the service is open as before
    api_keys_file: str = Field("", description='JSON file of hashed API keys (tenant, rights); read again when it changes, so keys rotate without a restart. Set: every route but /health needs a key')
    api_keys: str = Field("", description='the same JSON as ECG_API_KEYS_FILE, in the variable (fixed until a restart)')
    open_networks: str = Field("", description='CIDRs, comma separated, whose requests need no key (a backend inside the VPC): tenant "", rights submit, read, cancel')
    public_base_url: str = Field("", description='download links of the local store; empty: the host and port serve_app.py was started with, else DEFAULT_PUBLIC_BASE_URL')
    local_input_dirs: str = Field("", description='service: directories local paths may come from')
    max_request_bytes: int = Field(16 * 1024**2, description='HTTP body limit')
    status_cache_s: float = Field(0.1, description='a status answer is at most this old: each replica mirrors job statuses, refreshed by one call per this; 0: ask the job service on every poll')
    # Callbacks
    backend_callback_url: str = Field("", validation_alias=AliasChoices("backend_callback_url", "BACKEND_CALLBACK_URL"), description='used when a job names none')
    callback_secret: str = Field("", description='HMAC-SHA256 key of X-ECG-Signature')
    callback_interval_s: float = Field(1.0, description='at most one progress callback per this')
    callback_timeout_s: float = Field(10.0, description='one delivery attempt')
    callback_retry_s: float = Field(600.0, description='keep retrying the final callback this long')
    # URL policy (video and callback URLs)
    allow_networks: str = Field("", description='CIDRs always allowed, comma separated')
    deny_networks: str = Field("", description='CIDRs refused besides link-local/metadata')
    # Storage
    storage: str = Field("auto", description='auto (s3 when S3_BUCKET is set) | local | s3')
    s3_bucket: str = Field("", validation_alias=AliasChoices("s3_bucket", "S3_BUCKET"))
    aws_region: str = Field("ap-northeast-2", validation_alias=AliasChoices("aws_region", "AWS_REGION"))
    s3_endpoint_url: str = Field("", description='S3-compatible stores')
    s3_prefix: str = Field("renders", description='key = {prefix}/{job_id}.mp4')
    s3_url_expiry_s: int = Field(7 * 24 * 3600, description='presigned download URL lifetime')

# Download links of the local store when ECG_PUBLIC_BASE_URL is empty and the service was not
# started by serve_app.py (which puts its own --host/--port there): Serve's port in serve_config.yaml.
DEFAULT_PUBLIC_BASE_URL = "http://127.0.0.1:8090"


def public_base_url_for(host: str, port: int) -> str:
    """The base of download links for a service listening on ``host``:``port``. A wildcard
    address (0.0.0.0, ::) is no address to download from: this machine's name stands in."""
    import socket

    if host in ("", "0.0.0.0", "::", "[::]"):
        host = socket.gethostname()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return f"http://{host}:{port}"


# Ray Serve's request path, tuned for many small requests (status polls). Measured on 2 cores
# (bench/results/load-*.json, README "Load"): the proxy talking to the replica over gRPC and the
# replica running our (async, non-blocking) handlers on its own event loop roughly double the
# polls a second. Read by Ray's processes at start: serve_app.py sets them before it starts Ray,
# the Dockerfile sets them for cluster nodes, serve_config.yaml for replicas. An operator's own
# value wins.
SERVE_ENV = {
    "RAY_SERVE_PROXY_USE_GRPC": "1",
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
}
# Per-request access logs of the proxy and replicas, off unless ECG_ACCESS_LOG=1: at hundreds of
# polls a second they cost as much CPU as answering; job events are logged by the job service.
SERVE_LOGGING = {"enable_access_log": os.environ.get("ECG_ACCESS_LOG", "") == "1"}


def apply_serve_env() -> None:
    """Put SERVE_ENV into this process's environment (kept where already set), before Ray starts."""
    for k, v in SERVE_ENV.items():
        os.environ.setdefault(k, v)


_ENV_NAMES = {
    "max_concurrent_jobs": "MAX_CONCURRENT_JOBS",
    "backend_callback_url": "BACKEND_CALLBACK_URL",
    "s3_bucket": "S3_BUCKET",
    "aws_region": "AWS_REGION",
    "redis_url": "REDIS_URL",
}


# Settings that take one of a few words: anything else is refused when read, naming the variable
# (a typo must not quietly mean the default).
HWDEC_CHOICES = ("none", "cuda", "auto")
_CHOICES = {
    "encoder": ("auto", "libx264", "h264_nvenc"),
    "hwdec": HWDEC_CHOICES,
}


def usable_cores() -> int:
    """Cores this process may run on (taskset, a cpuset), which Ray and FFmpeg would otherwise
    take for every core of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def env_name(field_name: str) -> str:
    return _ENV_NAMES.get(field_name, "ECG_" + field_name.upper())


def load_settings() -> Settings:
    """Read Settings from the environment (each process does so once and passes them down; a
    fresh read each call, so a test or a tool that changes the environment sees it)."""
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0])
        if field not in Settings.model_fields:  # the seed's names are found by their alias
            field = next((f for f in Settings.model_fields if env_name(f) == field.upper()), field)
        name = env_name(field)
        raw = os.environ.get(name, os.environ.get(name.lower(), ""))
        choices = _CHOICES.get(field)
        if choices:
            raise ValueError(f"environment variable {name}={raw!r} is not one of {', '.join(choices)}") from None
        kind = type(Settings.model_fields[field].default).__name__ if field in Settings.model_fields else "value"
        raise ValueError(f"environment variable {name}={raw!r} is not a valid {kind}") from None
