"""The embedded job table: every job in memory, every change written to SQLite (state.py).

One service instance owns it (no leases to keep: the instance that runs is the only one). On
start the table is read back; jobs that were running wait, first, to be claimed again.
"""

from __future__ import annotations

import os
import secrets
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Collection
from typing import Any

from ecg_ray.service.jobtable import JobRecord
from ecg_ray.service.models import JobState, JobStatus, split_ref
from ecg_ray.service.state import JobStore

_RECENT_ON_RESYNC = 2000  # finished jobs sent with a full resync of a replica's status mirror


class SqliteTable:
    kind = "sqlite"

    def __init__(self, state_dir: str) -> None:
        self.db = JobStore(state_dir)
        self.incarnation = uuid.uuid4().hex  # the feed's counter lives in memory: it starts again
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._records: dict[str, JobRecord] = {}  # in submission order (seq), oldest first
        self._queue: deque[str] = deque()
        self._orphans: deque[str] = deque()  # running when the service stopped: claimed first
        self._running: set[str] = set()
        self._seq = 0
        self._version = 0
        self._versions: dict[str, int] = {}
        self._changed: OrderedDict[str, None] = OrderedDict()  # least recently changed first
        for seq, req, fp, st, outbox in self.db.load():
            self._records[st.ref] = JobRecord(seq, req, fp, st, outbox)
            self._seq = max(self._seq, seq + 1)
            self._bump(st.ref)
            if st.state == JobState.PROCESSING:
                self._orphans.append(st.ref)
            elif st.state == JobState.QUEUED:
                self._queue.append(st.ref)

    def _bump(self, job_id: str) -> None:
        self._version += 1
        self._versions[job_id] = self._version
        self._changed.pop(job_id, None)
        self._changed[job_id] = None

    def lock(self, job_id: str) -> threading.RLock:
        return self._lock

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            return self._records.get(job_id)

    def add(self, rec: JobRecord) -> JobRecord:
        with self._lock:
            rec.seq, self._seq = self._seq, self._seq + 1
            job_id = rec.status.ref
            if job_id in self._records:
                self.db.requeue(rec.seq, rec.status)
            else:
                self.db.insert(rec.seq, rec.request, rec.fingerprint, rec.status)
            self._records.pop(job_id, None)  # kept in submission order (recent): last
            self._records[job_id] = rec
            self._queue.append(job_id)
            self._bump(job_id)
            self._cond.notify_all()
            return rec

    def save(self, status: JobStatus, outbox: dict[str, Any] | None = None) -> None:
        with self._lock:
            rec = self._records.get(status.ref)
            if rec is None:
                return
            rec.status = status
            if outbox is not None:
                rec.outbox = outbox
            self.db.update(status, outbox)
            self._bump(status.ref)

    def touch(self, status: JobStatus) -> None:
        """A status change kept in memory only (the frequent progress between writes)."""
        with self._lock:
            rec = self._records.get(status.ref)
            if rec is not None:
                rec.status = status
                self._bump(status.ref)

    def outbox_done(self, job_id: str, attempt: int) -> None:
        with self._lock:
            rec = self._records.get(job_id)
            if rec is not None and rec.outbox is not None and rec.outbox.get("attempt") == attempt:
                rec.outbox = None
            self.db.outbox_done(job_id, attempt)

    def owed(self) -> list[JobRecord]:
        with self._lock:
            return [r for r in self._records.values()
                    if r.outbox is not None and JobState(r.status.state).terminal]

    def queued(self) -> list[str]:
        with self._lock:
            return list(self._queue)

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._running | set(self._orphans))

    def unqueue(self, job_id: str) -> bool:
        with self._lock:
            for q in (self._queue, self._orphans):
                if job_id in q:
                    q.remove(job_id)
                    return True
            return False

    def claim(self) -> tuple[str, bool] | None:
        with self._lock:
            for q, resumed in ((self._orphans, True), (self._queue, False)):
                if q:
                    job_id = q.popleft()
                    self._running.add(job_id)
                    return job_id, resumed
            return None

    def release(self, job_id: str, ended: bool) -> None:
        with self._lock:
            self._running.discard(job_id)
            self._cond.notify_all()

    def leases(self, job_ids: list[str]) -> dict[str, str]:
        with self._lock:
            return {j: ("this instance" if j in self._running else "") for j in job_ids}

    def renew(self, job_ids: list[str]) -> set[str]:
        return set(job_ids)

    def request_cancel(self, job_id: str) -> None:
        pass  # one instance: the cancel reaches the running job in memory

    def cancel_requested(self, job_ids: list[str]) -> set[str]:
        return set()

    def changes(self, since: int, full: bool) -> tuple[int, list[JobStatus]]:
        with self._lock:
            ids: dict[str, None] = dict.fromkeys(self._queue)
            if full:
                ids.update(dict.fromkeys(self._running | set(self._orphans)))
            for n, job_id in enumerate(reversed(self._changed)):  # newest first: O(changes)
                if (full and n >= _RECENT_ON_RESYNC) or (not full and self._versions[job_id] <= since):
                    break
                ids[job_id] = None
            return self._version, [self._records[j].status for j in ids if j in self._records]

    def recent(self, limit: int, tenant: str | None = None, states: Collection[JobState] = ()) -> list[JobStatus]:
        # Newest first, stopping at ``limit``: a scan of every job only when few match.
        out: list[JobStatus] = []
        with self._lock:
            for ref, rec in reversed(self._records.items()):
                if len(out) >= limit:
                    break
                if (tenant is None or split_ref(ref)[0] == tenant) and (not states or rec.status.state in states):
                    out.append(rec.status)
        return out

    def wait(self, timeout: float) -> None:
        with self._cond:
            if not self._queue and not self._orphans:
                self._cond.wait(timeout)

    def secret(self, name: str) -> bytes:
        path = os.path.join(os.path.dirname(self.db.path), f"{name}.secret")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # the first start makes it
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        except FileExistsError:
            pass
        with open(path) as fh:
            return fh.read().strip().encode()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.db.path, "ok": True}

    def close(self) -> None:
        self.wake()
        self.db.close()
