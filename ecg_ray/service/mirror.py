"""Each HTTP replica's copy of the job statuses, so that status polls cost no call to the job
service (README "ECG_STATUS_CACHE_S"; measured: at hundreds of polls a second, one call per poll
was the limit)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Optional

from ecg_ray.service.models import JobState, job_ref


def _key(st: dict) -> tuple:
    return (st.get("attempt", 1), st.get("interruptions", 0), JobState(st["state"]).rank, st["progress"],
            st["frames_done"])


def _newer(new: dict, old: Optional[dict]) -> bool:
    """Whether ``new`` is not older than ``old``: a job's status only moves forward within an
    attempt, and a later attempt is newer (jobs.py), so a late answer never replaces a fresher one.
    A job going on after a restart (one more interruption) is newer too, though it may have
    read back a little less progress than this replica saw (put() keeps the more)."""
    return old is None or _key(new) >= _key(old)


class StatusMirror:
    """This replica's copy of the job statuses, so that status polls cost no call to the job
    service: one ``changes`` call per ``max_age`` brings everything that changed. An answer is
    at most ``max_age`` old (a poll after that waits for the refresh, shared by every poll then
    waiting); a job not in the mirror (older than the last resync, or submitted through another
    replica since the refresh) is asked of the service directly."""

    def __init__(self, fetch: Callable[[int, str], Awaitable[dict]], max_age: float, size: int = 20000) -> None:
        self._fetch, self.max_age, self.size = fetch, max_age, size
        self._jobs: OrderedDict[str, dict] = OrderedDict()
        self._bodies: dict[str, bytes] = {}  # each status as its JSON answer, encoded once
        self._version, self._incarnation = 0, ""
        self._at = float("-inf")
        self._refresh: Optional[asyncio.Task] = None

    def put(self, st: dict) -> None:
        job_id = job_ref(st.get("tenant", ""), st["job_id"])  # keyed by ref: ids are unique per tenant
        old = self._jobs.get(job_id)
        if _newer(st, old):
            if old is not None and st.get("interruptions", 0) > old.get("interruptions", 0) \
                    and st.get("attempt", 1) == old.get("attempt", 1):
                # the progress clients were shown never goes back
                st = {**st, "progress": max(st["progress"], old["progress"]),
                      "frames_done": max(st["frames_done"], old["frames_done"])}
            self._jobs[job_id] = st
            self._bodies[job_id] = json.dumps(st, separators=(",", ":")).encode()
        self._jobs.move_to_end(job_id)
        while len(self._jobs) > self.size:
            self._bodies.pop(self._jobs.popitem(last=False)[0], None)

    def invalidate(self) -> None:
        """The next poll refreshes first: after a write through this replica (a submission, a
        cancel), its own reads see it and what it moved (queue positions)."""
        self._at = float("-inf")

    async def _pull(self) -> None:
        ch = await self._fetch(self._version, self._incarnation)
        # A full resync (first pull, or a restarted service) is merged like any other: clearing
        # first could drop an answer this replica gave while the pull was on its way (a newer
        # one), and a restarted service only moves jobs forward.
        for st in ch["jobs"]:
            self.put(st)
        self._version, self._incarnation = ch["version"], ch["incarnation"]

    async def get(self, job_id: str) -> Optional[bytes]:
        """The job's status as its JSON answer if the mirror has it (at most max_age old), else None
        (``job_id``: the job's ref, models.job_ref)."""
        if time.monotonic() - self._at > self.max_age:
            if self._refresh is None or self._refresh.done():
                started = time.monotonic()

                async def pull() -> None:
                    await self._pull()
                    self._at = started

                self._refresh = asyncio.ensure_future(pull())
            await asyncio.shield(self._refresh)
        return self._bodies.get(job_id)
