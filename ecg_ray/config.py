"""All configuration in one place: environment variables with documented defaults.

Names follow the seed service where it had them (S3_BUCKET, AWS_REGION, MAX_CONCURRENT_JOBS,
BACKEND_CALLBACK_URL); everything else is prefixed ECG_.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, fields


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class Settings:
    # Rendering
    x264_preset: str = "veryfast"          # ECG_X264_PRESET
    default_quality: int = 70              # ECG_DEFAULT_QUALITY (0-100, higher is better)
    encoder: str = "auto"                  # ECG_ENCODER: auto | libx264 | h264_nvenc
    hwdec: str = "none"                    # ECG_HWDEC: none | cuda | auto
    segment_num_gpus: float = 0.25         # ECG_SEGMENT_NUM_GPUS (used only when the cluster has GPUs)
    segment_num_cpus: float = 1.0          # ECG_SEGMENT_NUM_CPUS
    min_segment_seconds: float = 2.0       # ECG_MIN_SEGMENT_SECONDS
    max_segments: int = 64                 # ECG_MAX_SEGMENTS
    capture_margin_px: int = 24            # ECG_CAPTURE_MARGIN_PX (room for glows/shadows beyond boxes)
    # Limits on input
    max_input_bytes: int = 20 * 1024**3    # ECG_MAX_INPUT_BYTES
    max_duration_s: float = 4 * 3600.0     # ECG_MAX_DURATION_S
    max_pixels: int = 3840 * 2160          # ECG_MAX_PIXELS (output width*height)
    fetch_timeout_s: float = 60.0          # ECG_FETCH_TIMEOUT_S
    # Places
    tmp_dir: str = tempfile.gettempdir()   # ECG_TMP_DIR
    output_dir: str = "./ecg_output"       # ECG_OUTPUT_DIR
    ffmpeg: str = ""                       # ECG_FFMPEG (default: imageio-ffmpeg's binary)
    chromium: str = ""                     # ECG_CHROMIUM (default: Playwright's, else the system's)
    # Service (used by the Serve app)
    max_concurrent_jobs: int = 4           # MAX_CONCURRENT_JOBS
    backend_callback_url: str = ""         # BACKEND_CALLBACK_URL
    s3_bucket: str = ""                    # S3_BUCKET
    aws_region: str = "ap-northeast-2"     # AWS_REGION


_ENV_NAMES = {
    "max_concurrent_jobs": "MAX_CONCURRENT_JOBS",
    "backend_callback_url": "BACKEND_CALLBACK_URL",
    "s3_bucket": "S3_BUCKET",
    "aws_region": "AWS_REGION",
}


def env_name(field_name: str) -> str:
    return _ENV_NAMES.get(field_name, "ECG_" + field_name.upper())


def load_settings() -> Settings:
    """Read Settings from the environment (fresh each call: tests and actors may change it)."""
    values = {}
    for f in fields(Settings):
        raw = os.environ.get(env_name(f.name))
        if raw is None or raw == "":
            continue
        typ = type(f.default)
        try:
            values[f.name] = typ(raw) if typ is not bool else raw.lower() in ("1", "true", "yes")
        except ValueError as exc:
            raise ValueError(f"environment variable {env_name(f.name)}={raw!r} is not a valid {typ.__name__}") from exc
    return Settings(**values)
