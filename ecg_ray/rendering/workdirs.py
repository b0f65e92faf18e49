"""Temporary directories of actors and jobs, named so that a later process can clean up after
one that was killed (``ray.kill`` and crashes skip every ``finally``).

Names are ``ecg-<pid>-<kind>-...`` under ECG_TMP_DIR: the pid says whether the owner still runs.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile

from ecg_ray.files import discard

_OWNED = re.compile(r"^ecg-(\d+)-")


def make_workdir(tmp_dir: str, kind: str, job_id: str | None = None) -> str:
    os.makedirs(tmp_dir, exist_ok=True)
    prefix = f"ecg-{os.getpid()}-{kind}-" + (f"{job_id}-" if job_id else "")
    return tempfile.mkdtemp(prefix=prefix, dir=tmp_dir)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sweep_stale(tmp_dir: str) -> list[str]:
    """Remove the work directories of processes on this machine that no longer run."""
    removed = []
    for path in glob.glob(os.path.join(tmp_dir, "ecg-*-*")):
        m = _OWNED.match(os.path.basename(path))
        if m and os.path.isdir(path) and not _pid_alive(int(m.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def remove_job_files(tmp_dir: str, job_id: str) -> None:
    """Everything of one job under ``tmp_dir``: its work directories and its files inside the
    actors' directories (segments, the cached source)."""
    for path in glob.glob(os.path.join(tmp_dir, f"ecg-*-*-{glob.escape(job_id)}-*")):
        shutil.rmtree(path, ignore_errors=True)
    for path in glob.glob(os.path.join(tmp_dir, "ecg-*-actor-*", f"{glob.escape(job_id)}-*")):
        discard(path)
    for path in glob.glob(os.path.join(tmp_dir, f"ecg-out-{glob.escape(job_id)}.*")):  # .mp4 .mov .webm
        discard(path)
