"""When a segment or a join is tried again, and when a job gives up: the retry rules in one
place. The mechanisms that apply them are where the work runs: the segment actor (actors.py),
the dispatcher (scheduler.py) and the renderer's join (renderer.py)."""

from __future__ import annotations

import ray

from ecg_ray.capture.browser import BrowserHung
from ecg_ray.errors import RenderError
from ecg_ray.media.ffmpeg import FFmpegCrashed
from ecg_ray.rendering.models import SegmentSpec

# A segment that failed in a way a second try can fix (its Chromium crashed or hung, an FFmpeg
# child was killed) is rendered again by the same actor, once; anything else fails the segment.
SEGMENT_ATTEMPTS = 2
# A segment whose actor died (its node left, the process was killed), or whose file was lost with
# its node before the join fetched it, is rendered again on another actor, at most this many times.
SEGMENT_RETRIES = 2
# A join whose FFmpeg was killed, or whose actor died, is run again once (the files are still in
# the object store); segment files lost with their node before the join are rendered again once.
JOIN_ATTEMPTS = 2

# Errors of a segment call that mean "the actor (or its node) is gone", not "the segment is bad".
ACTOR_GONE = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
              ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError)


def unwrap_error(exc: BaseException) -> BaseException:
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def actor_died(exc: BaseException) -> bool:
    return isinstance(exc, ray.exceptions.RayActorError) or isinstance(unwrap_error(exc), ray.exceptions.RayActorError)


def is_lost(exc: BaseException) -> bool:
    """An object (a segment file) that is gone: lost with its node, or an output of an actor that
    died before its copy left the node (Ray cannot run a dead actor's call again)."""
    lost = (ray.exceptions.ObjectLostError, ray.exceptions.RayActorError)
    return isinstance(exc, lost) or isinstance(unwrap_error(exc), lost)


def _is_browser_failure(exc: BaseException) -> bool:
    if isinstance(exc, BrowserHung):
        return True
    try:
        from playwright.async_api import Error as PlaywrightError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, PlaywrightError)


def same_actor_retry(exc: BaseException) -> str | None:
    """"browser" or "ffmpeg" for a failure worth one more try, None for one that is not."""
    if _is_browser_failure(exc):
        return "browser"
    if isinstance(exc, FFmpegCrashed):
        return "ffmpeg"
    return None


def failed_again(kind: str, seg: SegmentSpec, exc: BaseException) -> RenderError:
    """The job's error when the retry failed the same way (a plain RenderError: nothing retries it)."""
    if isinstance(exc, RenderError):
        detail = exc.message
    else:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    detail = detail[:400]
    if kind == "browser":
        return RenderError("browser_unavailable", f"segment {seg.index}: Chromium failed again after a restart: {detail}")
    return RenderError("encoder_failed", f"segment {seg.index}: FFmpeg crashed again on the retry: {detail}")
