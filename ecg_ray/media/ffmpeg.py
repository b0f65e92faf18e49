"""Finding FFmpeg and running it as a child that dies with its parent."""

from __future__ import annotations

import ctypes
import errno
import os
import re
import signal
import subprocess
import threading
from functools import lru_cache
from typing import IO, Any

from ecg_ray.config import load_settings
from ecg_ray.errors import RenderError

_PR_SET_PDEATHSIG = 1
# What FFmpeg (and the OS) say when the disk under an output is full.
_NO_SPACE = ("No space left on device", "Disk quota exceeded", "File too large")
_NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class FFmpegCrashed(RenderError):
    """An FFmpeg child was killed by a signal mid-work (OOM killer, segfault, an operator's kill).

    Unlike a non-zero exit (bad input, bad arguments, a full disk: the same again on a retry),
    a crash is worth one more try; the segment actor retries the segment once.
    """

    def __init__(self, message: str) -> None:
        super().__init__("encoder_failed", message)

    def __reduce__(self) -> tuple[type, tuple[str, ...]]:
        return (FFmpegCrashed, (self.message,))


def failure(what: str, returncode: int | None, tail: str, target: str = "") -> RenderError:
    """The error for an FFmpeg child that ended badly: ``what`` names it, ``tail`` is the end of its
    log, ``target`` the file it wrote (if any).

    Killed by a signal -> FFmpegCrashed (retried once); the disk full -> storage_failed with
    FFmpeg's own "No space left on device"; anything else -> encoder_failed.
    """
    tail = tail.strip()
    rc = returncode if returncode is not None else 0
    writing = f" writing {target}" if target else ""
    if rc < 0:
        try:
            sig = signal.Signals(-rc).name
        except ValueError:
            sig = f"signal {-rc}"
        return FFmpegCrashed(f"{what} was killed by {sig}{writing}" + (f": {tail[:300]}" if tail else ""))
    if any(s in tail for s in _NO_SPACE):
        return RenderError("storage_failed", f"{what}: the disk is full{writing} (exit {rc}): {tail[:400]}")
    return RenderError("encoder_failed", f"{what} failed (exit {rc}): {tail[:400]}")


def is_no_space(exc: BaseException) -> bool:
    """An OSError saying the disk (or a quota, or a file size limit) is full."""
    return isinstance(exc, OSError) and exc.errno in _NO_SPACE_ERRNOS


def no_space_error(exc: OSError, where: str) -> RenderError:
    return RenderError("storage_failed", f"cannot write {where}: {exc.strerror or exc} (errno {exc.errno})")


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

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception as exc:  # pragma: no cover - depends on install
        raise RenderError("setup_incomplete", f"no FFmpeg binary found (install imageio-ffmpeg or set ECG_FFMPEG): {exc}")


def ffmpeg_exe() -> str:
    return _resolve(load_settings().ffmpeg)


def pipe(stream: IO[bytes] | None) -> IO[bytes]:
    """One of a process's streams that it was started with as a pipe (stdin/stdout/stderr=PIPE):
    never None then."""
    assert stream is not None, "the process was not started with this stream as a pipe"
    return stream


def drain(stream: IO[bytes], into: list[bytes], keep: int = 50) -> threading.Thread:
    """Read a process's stderr to its end on a daemon thread, keeping its first ``keep`` lines
    for error messages: an FFmpeg whose stderr pipe fills up stalls."""
    def run() -> None:
        for line in iter(stream.readline, b""):
            if len(into) < keep:
                into.append(line)

    t = threading.Thread(target=run, name="ffmpeg-stderr", daemon=True)
    t.start()
    return t


def popen(args: list[str], nice: int = 0, **kw: Any) -> subprocess.Popen[bytes]:
    """Start ffmpeg with ``args`` (without the binary), killed if this process dies; ``nice``
    lowers its CPU priority (see Settings.encoder_nice)."""
    def child() -> None:
        _die_with_parent()
        if nice:
            try:
                os.nice(nice)
            except OSError:
                pass

    return subprocess.Popen([ffmpeg_exe(), "-hide_banner", "-nostdin", *args], preexec_fn=child, **kw)


def run(args: list[str], timeout: float | None = None, what: str = "ffmpeg") -> subprocess.CompletedProcess[bytes]:
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
        raise failure(what, proc.returncode, tail)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@lru_cache(maxsize=4)
def _version(exe: str) -> tuple[int, ...]:
    out = run(["-version"], timeout=30, what="ffmpeg -version").stdout.decode("utf-8", "replace")
    m = re.match(r"ffmpeg version n?(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else ()


def version() -> tuple[int, ...]:
    """(major, minor) of the FFmpeg in use; () where the build does not say (git snapshots)."""
    return _version(ffmpeg_exe())


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
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
