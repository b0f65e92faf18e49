"""Errors that name what is wrong. Every failure a user can cause maps to one code."""

from __future__ import annotations

# Documented error codes (README "Error codes"); callbacks and the CLI report these.
ERROR_CODES = {
    "invalid_input": "the input video is missing, unreadable, or not a video",
    "invalid_scenario": "the scenario is not valid JSON or not a valid MotionText scenario",
    "invalid_options": "render options are out of range",
    "input_too_large": "the input exceeds a configured limit (size, duration, resolution)",
    "fetch_failed": "the input could not be downloaded",
    "asset_failed": "a define asset (font or image) could not be fetched, is too large, or is not an allowed type",
    "forbidden_url": "a URL's scheme or network address is not allowed",
    "scenario_error": "the caption page failed while rendering the scenario",
    "browser_unavailable": "Chromium could not be started",
    "encoder_failed": "FFmpeg failed while decoding, encoding or joining",
    "setup_incomplete": "a required asset or binary is not installed",
    "storage_failed": "the result or the job's temporary files could not be written (e.g. the disk is full)",
    "cancelled": "the job was cancelled",
    "interrupted": "the service stopped while the job was running",
    "internal_error": "an unexpected failure inside the service",
    # Answers of the HTTP API / Python client about a request rather than a render
    "invalid_request": "the request body is missing fields or has wrong types (HTTP 422)",
    "conflict": "a job with this job_id exists with a different request (HTTP 409)",
    "queue_full": "too many jobs are waiting; retry after Retry-After seconds (HTTP 429)",
    "not_found": "no job has this job_id (HTTP 404)",
    "not_ready": "the job has no result yet (HTTP 409)",
    "unauthorized": "API keys are configured and the request has none, or not a valid one (HTTP 401)",
    "forbidden": "the request does not open this: its API key lacks the right or acts for another tenant, or a download link without a valid signature, or expired (HTTP 403)",
    "store_unavailable": "the job table (Redis) cannot be reached; retry after Retry-After seconds (HTTP 503)",
}


class RenderError(Exception):
    """A failure with a stable code and a one-line message a user can act on."""

    def __init__(self, code: str, message: str) -> None:
        if code not in ERROR_CODES:
            code = "internal_error"
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __reduce__(self) -> tuple[type, tuple[str, ...]]:  # survives pickling through Ray
        return (RenderError, (self.code, self.message))


class Cancelled(RenderError):
    """The job was cancelled: raised wherever a stage sees the job's cancel event set, so every
    stage stops the same way (and the job ends ``cancelled``, not failed)."""

    def __init__(self, message: str = "job cancelled") -> None:
        super().__init__("cancelled", message)

    def __reduce__(self) -> tuple[type, tuple[str, ...]]:
        return (Cancelled, (self.message,))


def invalid_scenario(path: str, problem: str) -> RenderError:
    """The error for a scenario problem, naming the JSON path (``cues[3].end: ...``)."""
    return RenderError("invalid_scenario", f"{path}: {problem}")


def scenario_number(value: object, path: str) -> float:
    """A finite JSON number at ``path`` (booleans are not numbers), else invalid_scenario."""
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid_scenario(path, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise invalid_scenario(path, "must be a finite number")
    return float(value)
