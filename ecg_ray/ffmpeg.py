"""Finding FFmpeg and running it as a child that dies with its parent."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from functools import lru_cache

from .config import load_settings
from .errors import RenderError

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # ray.kill skips atexit handlers: the kernel must kill our children when the actor dies.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


@lru_cache(maxsize=4)
def _resolve(override: str) -> str:
    if override:
        return override
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as exc:  # pragma: no cover - depends on install
        raise RenderError("setup_incomplete", f"no FFmpeg binary found (install imageio-ffmpeg or set ECG_FFMPEG): {exc}")


def ffmpeg_exe() -> str:
    return _resolve(load_settings().ffmpeg)


def popen(args: list[str], **kw) -> subprocess.Popen:
    """Start ffmpeg with ``args`` (without the binary), killed if this process dies."""
    return subprocess.Popen([ffmpeg_exe(), "-hide_banner", "-nostdin", *args], preexec_fn=_die_with_parent, **kw)


def run(args: list[str], timeout: float | None = None, what: str = "ffmpeg") -> subprocess.CompletedProcess:
    """Run ffmpeg to completion; on failure raise RenderError with the last lines of its log."""
    proc = popen(["-loglevel", "error", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RenderError("encoder_failed", f"{what} timed out after {timeout:.0f}s")
    if proc.returncode != 0:
        tail = " | ".join(err.decode("utf-8", "replace").strip().splitlines()[-3:])
        raise RenderError("encoder_failed", f"{what} failed (exit {proc.returncode}): {tail[:400]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def terminate(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    """Stop a child for sure, without leaving a zombie."""
    if proc is None or proc.poll() is not None:
        return
    for closer in (proc.terminate, proc.kill):
        try:
            closer()
            proc.wait(timeout=timeout)
            return
        except (subprocess.TimeoutExpired, ProcessLookupError):
            continue
        except OSError:
            break
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except OSError:
        pass
