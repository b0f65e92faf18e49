"""All configuration in one place: environment variables with documented defaults.

Names follow the seed service where it had them (S3_BUCKET, AWS_REGION, MAX_CONCURRENT_JOBS,
BACKEND_CALLBACK_URL); everything else is prefixed ECG_.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, fields
from typing import Any


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class Settings:
    # Rendering
    x264_preset: str = "veryfast"          # ECG_X264_PRESET
    default_quality: int = 70              # ECG_DEFAULT_QUALITY (0-100, higher is better)
    encoder: str = "auto"                  # ECG_ENCODER: auto | libx264 | h264_nvenc
    hwdec: str = "none"                    # ECG_HWDEC: none | cuda | auto (NVDEC decoding; auto: where a test decode works on the segment's node, else the CPU)
    segment_num_gpus: float = 0.25         # ECG_SEGMENT_NUM_GPUS (used only when the cluster has GPUs)
    segment_num_cpus: float = 1.0          # ECG_SEGMENT_NUM_CPUS
    min_segment_seconds: float = 2.0       # ECG_MIN_SEGMENT_SECONDS
    max_segments: int = 64                 # ECG_MAX_SEGMENTS
    busy_segment_seconds: float = 8.0      # ECG_BUSY_SEGMENT_SECONDS (a job planned while other jobs' segments waiting for actors are at least as many as the actors gets segments at least this long: it only gets its share of the actors anyway, and each segment costs a page load, pre-roll and lane starts; 0: split as on an idle cluster)
    capture_margin_px: int = 24            # ECG_CAPTURE_MARGIN_PX (room for glows/shadows beyond boxes)
    burn_in_ffmpeg: bool = True            # ECG_BURN_IN_FFMPEG (a segment whose frames map one for one onto the source is decoded, captioned and encoded by one FFmpeg; 0: always the decode -> Python -> encode relay)
    overlay_band: bool = True              # ECG_OVERLAY_BAND (burn path: overlay pictures cover a band down to the frame's bottom, sized at a segment's first caption, instead of the whole frame; a caption above it renders the segment again whole-frame)
    decoder_threads: int = 4               # ECG_DECODER_THREADS (most threads of a segment's video decoder, at most one per core it may use plus one: FFmpeg's own choice, one per core plus one, holds frames per thread: 84 MB more at 1080p and 290 MB at 4K with 17 threads against 4, and no faster; 0: FFmpeg's choice)
    encoder_threads: int = 4               # ECG_ENCODER_THREADS (x264 threads per segment; 0: FFmpeg's own choice, 1.5 per core it sees, however many actors share them)
    capture_lanes: int = 8                 # ECG_CAPTURE_LANES (a segment's frames are walked as this many runs at once, each by its own renderer in the page, and their changed captions captured together in one screenshot: a capture's fixed cost is shared; 1: one run, one capture per changed frame)
    lane_hold_mb: int = 32                 # ECG_LANE_HOLD_MB (converted captions of the runs ahead, held until the encoder reaches them; past this only the first run walks on)
    encoder_nice: int = 0                  # ECG_ENCODER_NICE (lower the segment encoders' CPU priority by this, so the browsers feeding them are not kept waiting)
    # Scheduling (pipeline.Renderer's shared actor pool; docs/operations.md "Scheduling")
    segment_nvenc: float = 1.0             # ECG_SEGMENT_NVENC (units of the custom resource "nvenc" each segment actor asks for, as well as its GPU share, where the cluster advertises "nvenc" and ECG_ENCODER is not libx264; 0: never ask)
    actor_idle_s: float = 600.0            # ECG_ACTOR_IDLE_S (a segment actor idle this long is stopped so its node can scale down; 0: never)
    min_warm_actors: int = 1               # ECG_MIN_WARM_ACTORS (segment actors kept however long they idle)
    actor_recycle_mb: int = 1024           # ECG_ACTOR_RECYCLE_MB (a segment actor whose memory once a segment is done, PSS of it with its Chromium and Playwright's driver, is above this is replaced by a fresh one; 0: never)
    autoscale_requests: bool = True        # ECG_AUTOSCALE_REQUESTS (while segments wait for actors, ask the autoscaler for actor-sized bundles with request_resources; cleared when idle)
    # Limits on input
    max_input_bytes: int = 20 * 1024**3    # ECG_MAX_INPUT_BYTES
    max_duration_s: float = 4 * 3600.0     # ECG_MAX_DURATION_S
    max_pixels: int = 3840 * 2160          # ECG_MAX_PIXELS (output width*height)
    fetch_timeout_s: float = 60.0          # ECG_FETCH_TIMEOUT_S
    # Limits on define assets (fonts, images a scenario's define section names; assets.py)
    max_asset_bytes: int = 20 * 1024**2    # ECG_MAX_ASSET_BYTES (one asset)
    max_assets_total_bytes: int = 64 * 1024**2  # ECG_MAX_ASSETS_TOTAL_BYTES (all assets of one job together)
    max_assets: int = 32                   # ECG_MAX_ASSETS (distinct assets per job)
    asset_timeout_s: float = 20.0          # ECG_ASSET_TIMEOUT_S (fetching one asset, from connect to last byte)
    # Places
    tmp_dir: str = tempfile.gettempdir()   # ECG_TMP_DIR
    output_dir: str = "./ecg_output"       # ECG_OUTPUT_DIR
    ffmpeg: str = ""                       # ECG_FFMPEG (default: imageio-ffmpeg's binary)
    chromium: str = ""                     # ECG_CHROMIUM (default: Playwright's, else the system's)
    web_vendor_dir: str = ""               # ECG_WEB_VENDOR_DIR (the npm page assets; default: capture/web/vendor, where setup copies them)
    chromium_args: str = ""                # ECG_CHROMIUM_ARGS (extra Chromium flags, space separated; one of them --enable-gpu: the --disable-gpu default is dropped)
    # Service (used by the Serve app)
    max_concurrent_jobs: int = 4           # MAX_CONCURRENT_JOBS (jobs rendering at once)
    max_queued_jobs: int = 100             # ECG_MAX_QUEUED_JOBS (waiting jobs; beyond this: 429)
    state_dir: str = "./ecg_state"         # ECG_STATE_DIR (SQLite job store)
    public_base_url: str = ""              # ECG_PUBLIC_BASE_URL (download links of the local store; empty: the host and port serve_app.py was started with, else DEFAULT_PUBLIC_BASE_URL)
    local_input_dirs: str = ""             # ECG_LOCAL_INPUT_DIRS (service: directories local paths may come from)
    max_request_bytes: int = 16 * 1024**2  # ECG_MAX_REQUEST_BYTES (HTTP body limit)
    status_cache_s: float = 0.1            # ECG_STATUS_CACHE_S (a status answer is at most this old: each replica mirrors job statuses, refreshed by one call per this; 0: ask the job service on every poll)
    # Callbacks
    backend_callback_url: str = ""         # BACKEND_CALLBACK_URL (used when a job names none)
    callback_secret: str = ""              # ECG_CALLBACK_SECRET (HMAC-SHA256 key of X-ECG-Signature)
    callback_interval_s: float = 1.0       # ECG_CALLBACK_INTERVAL_S (at most one progress callback per this)
    callback_timeout_s: float = 10.0       # ECG_CALLBACK_TIMEOUT_S (one delivery attempt)
    callback_retry_s: float = 600.0        # ECG_CALLBACK_RETRY_S (keep retrying the final callback this long)
    # URL policy (video and callback URLs)
    allow_networks: str = ""               # ECG_ALLOW_NETWORKS (CIDRs always allowed, comma separated)
    deny_networks: str = ""                # ECG_DENY_NETWORKS (CIDRs refused besides link-local/metadata)
    # Storage
    storage: str = "auto"                  # ECG_STORAGE: auto (s3 when S3_BUCKET is set) | local | s3
    s3_bucket: str = ""                    # S3_BUCKET
    aws_region: str = "ap-northeast-2"     # AWS_REGION
    s3_endpoint_url: str = ""              # ECG_S3_ENDPOINT_URL (S3-compatible stores)
    s3_prefix: str = "renders"             # ECG_S3_PREFIX (key = {prefix}/{job_id}.mp4)
    s3_url_expiry_s: int = 7 * 24 * 3600   # ECG_S3_URL_EXPIRY_S (presigned download URL lifetime)

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
    """Read Settings from the environment (fresh each call: tests and actors may change it)."""
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = os.environ.get(env_name(f.name))
        if raw is None or raw == "":
            continue
        typ: type = type(f.default)
        try:
            values[f.name] = typ(raw) if typ is not bool else raw.lower() in ("1", "true", "yes")
        except ValueError as exc:
            raise ValueError(f"environment variable {env_name(f.name)}={raw!r} is not a valid {typ.__name__}") from exc
        choices = _CHOICES.get(f.name)
        if choices and values[f.name] not in choices:
            raise ValueError(f"environment variable {env_name(f.name)}={raw!r} is not one of {', '.join(choices)}")
    return Settings(**values)
