"""Bring a job's input to a local file: a local path as is, an http(s) URL downloaded."""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request

from .config import Settings
from .errors import RenderError


def is_url(src: str) -> bool:
    return urllib.parse.urlsplit(src).scheme in ("http", "https")


def materialize(src: str, workdir: str, settings: Settings) -> str:
    """Local path for ``src``; downloads URLs into ``workdir`` with size and time limits."""
    scheme = urllib.parse.urlsplit(src).scheme
    if scheme in ("http", "https"):
        return _download(src, workdir, settings)
    if scheme and len(scheme) > 1 and scheme != "file":
        raise RenderError("invalid_input", f"input scheme {scheme!r} is not supported (use a path or http(s) URL)")
    path = urllib.parse.urlsplit(src).path if scheme == "file" else src
    if not os.path.isfile(path):
        raise RenderError("invalid_input", f"input {src!r} does not exist or is not a file")
    return os.path.abspath(path)


def _download(url: str, workdir: str, settings: Settings) -> str:
    name = os.path.basename(urllib.parse.urlsplit(url).path) or "input"
    dest = os.path.join(workdir, "input-" + "".join(c for c in name if c.isalnum() or c in "._-")[:80])
    req = urllib.request.Request(url, headers={"User-Agent": "ecg-ray/0.1"})
    try:
        with urllib.request.urlopen(req, timeout=settings.fetch_timeout_s) as resp, open(dest, "wb") as fh:
            declared = resp.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > settings.max_input_bytes:
                raise RenderError("input_too_large", f"input is {int(declared)} bytes; the limit is {settings.max_input_bytes}")
            got = 0
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                got += len(chunk)
                if got > settings.max_input_bytes:
                    raise RenderError("input_too_large", f"input exceeds the limit of {settings.max_input_bytes} bytes")
                fh.write(chunk)
    except RenderError:
        _rm(dest)
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:
        _rm(dest)
        raise RenderError("fetch_failed", f"cannot download input {url!r}: {exc}") from exc
    return dest


def _rm(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass

