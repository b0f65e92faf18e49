"""Bring a job's input to a local file: a local path as is, an http(s) or s3 URL downloaded."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable

from ecg_ray.config import Settings
from ecg_ray.errors import Cancelled, RenderError
from ecg_ray.files import discard
from ecg_ray.media.ffmpeg import is_no_space, no_space_error
from ecg_ray.sources.s3 import download_s3
from ecg_ray.sources.urls import NetPolicy, redact, request
from ecg_ray.sources.watch import TransferWatch

_USER_AGENT = "ecg-ray/0.1"


REMOTE_SCHEMES = ("http", "https", "s3")


def is_url(src: str) -> bool:
    """A remote input (downloaded first): http(s) or s3."""
    return urllib.parse.urlsplit(src).scheme.lower() in REMOTE_SCHEMES


def input_scheme(src: str, what: str = "input") -> str:
    """The scheme of a video's path or URL: http, https or s3 for a download, "file" or "" for a
    local path; any other is forbidden_url. The one rule for the command line, the service's
    submission check and the render."""
    try:
        scheme = urllib.parse.urlsplit(src).scheme.lower()
    except ValueError as exc:
        raise RenderError("invalid_input", f"{what} {redact(src)!r} is not a valid path or URL: {exc}") from None
    if len(scheme) == 1:  # a Windows drive (C:\clip.mp4), not a scheme
        return ""
    if scheme not in (*REMOTE_SCHEMES, "file", ""):
        raise RenderError("forbidden_url", f"{what} scheme {scheme!r} is not allowed (use http, https or s3)")
    return scheme


def check_input(src: str, settings: Settings, policy: NetPolicy, allow_local: bool, what: str = "input") -> None:
    """What can be known of a video's address before its job runs (the service answers 422):
    a download must pass the URL policy; a local path needs ECG_LOCAL_INPUT_DIRS (where it is
    checked again, with the file, when the job runs)."""
    scheme = input_scheme(src, what)
    if scheme in REMOTE_SCHEMES:
        policy.check(src, schemes=REMOTE_SCHEMES)
    elif not allow_local and not settings.local_input_dirs.strip():
        raise RenderError("forbidden_url", f"{what} {src[:200]!r}: local paths and file:// URLs are not accepted by "
                                           "this service (ECG_LOCAL_INPUT_DIRS is empty); send an http(s) or s3 URL")


def materialize(src: str, workdir: str, settings: Settings, policy: NetPolicy | None = None,
                allow_local: bool = True, cancelled: Callable[[], bool] = lambda: False) -> str:
    """Local path for ``src``; downloads URLs into ``workdir`` with size and time limits.

    http(s) URLs must pass ``policy`` (default: the settings' networks), and so must every
    redirect. ``s3://bucket/key`` goes through ``storage.download_s3`` (the policy does not apply:
    the endpoint is configured, not chosen by the caller). Local paths and
    ``file://`` URLs are taken as they are when ``allow_local`` (the CLI); otherwise (the service)
    only when their real path lies inside one of ``settings.local_input_dirs``.
    """
    scheme = input_scheme(src)
    parts = urllib.parse.urlsplit(src)
    if scheme in ("http", "https"):
        return _download(src, workdir, settings, policy or NetPolicy.from_settings(settings), cancelled)
    if scheme == "s3":
        return _download_s3(src, workdir, settings, cancelled)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise RenderError("forbidden_url", f"file URL {src!r} names another host")
        path = urllib.parse.unquote(parts.path)
    else:
        path = src
    if not allow_local:
        path = allowed_local_path(src, path, settings)
    if not os.path.isfile(path):
        raise RenderError("invalid_input", f"input {src!r} does not exist or is not a file")
    return os.path.abspath(path)


def allowed_local_path(src: str, path: str, settings: Settings) -> str:
    """The real path of ``path`` if it lies inside a configured input directory, else forbidden_url.

    Checked before existence, so a refusal says nothing about which files exist.
    """
    real = os.path.realpath(path)  # resolves symlinks and "..": neither can leave the directory
    for d in (p.strip() for p in settings.local_input_dirs.split(",")):
        if not d:
            continue
        root = os.path.realpath(d)
        if os.path.commonpath([real, root]) == root:
            return real
    if not settings.local_input_dirs.strip():
        raise RenderError("forbidden_url", f"local input {src!r} is not allowed here (ECG_LOCAL_INPUT_DIRS is empty)")
    raise RenderError("forbidden_url", f"local input {src!r} is outside the allowed input directories")


def _dest(name: str, workdir: str) -> str:
    safe = "".join(c for c in os.path.basename(name) if c.isalnum() or c in "._-")[-80:]  # keep the extension
    return os.path.join(workdir, "input-" + (safe or "input"))


def _download(url: str, workdir: str, settings: Settings, policy: NetPolicy,
              cancelled: Callable[[], bool] = lambda: False) -> str:
    dest = _dest(urllib.parse.urlsplit(url).path, workdir)
    shown = redact(url)
    limit = settings.max_input_bytes
    try:
        if cancelled():
            raise Cancelled("job cancelled before its video was downloaded")
        with request(url, policy, headers={"User-Agent": _USER_AGENT}, timeout=settings.fetch_timeout_s) as resp, \
                TransferWatch(resp.abort, settings, cancelled) as watch:
            if not 200 <= resp.status < 300:
                raise RenderError("fetch_failed", f"cannot download input {shown!r}: HTTP {resp.status} {resp.reason}")
            declared = resp.headers.get("Content-Length")
            expected = int(declared) if declared and declared.strip().isdigit() else None
            if expected is not None and expected > limit:  # refuse before reading a byte
                raise RenderError("input_too_large", f"input is {expected} bytes; the limit is {limit}")
            with open(dest, "wb") as fh:
                while True:
                    try:
                        chunk = resp.read1(1 << 20)
                    except RenderError:
                        stopped = watch.error(shown)  # the abort broke the read: say why it came
                        if stopped is not None:
                            raise stopped from None
                        raise
                    if not chunk:
                        break
                    watch.got += len(chunk)
                    if watch.got > limit:  # the length may be missing or wrong: count what arrives
                        raise RenderError("input_too_large", f"input exceeds the limit of {limit} bytes")
                    fh.write(chunk)
            stopped = watch.error(shown)
            if stopped is not None:  # the abort ended the body early, as an end of file
                raise stopped
            if expected is not None and watch.got < expected:
                raise RenderError("fetch_failed", f"download of {shown!r} ended after {watch.got} of {expected} bytes")
    except RenderError:
        discard(dest)
        raise
    except (OSError, ValueError) as exc:
        discard(dest)
        if isinstance(exc, OSError) and is_no_space(exc):  # our disk, not their server: say so
            raise no_space_error(exc, f"the download of {shown!r}") from None
        raise RenderError("fetch_failed", f"cannot download input {shown!r}: {exc}") from exc
    return dest


def _download_s3(url: str, workdir: str, settings: Settings, cancelled: Callable[[], bool] = lambda: False) -> str:
    # The bucket's endpoint comes from the settings, not the user, so no network policy applies;
    # download_s3 checks the URL's form and the size limit itself.

    dest = _dest(url, workdir)  # the key is literal: its "?" and "#" are part of the name
    try:
        download_s3(url, dest, settings, cancelled=cancelled)
    except BaseException:
        discard(dest)
        raise
    return dest
