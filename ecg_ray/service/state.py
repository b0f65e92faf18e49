"""The job table on disk (SQLite in ECG_STATE_DIR): what a restarted service still knows.

The job registry keeps jobs in memory and writes every state change here; on start it reads
the table back. One connection behind a lock: writes are small and few (at most one progress
write per job a second), so SQLite's single writer is no limit.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from typing import Any

from pydantic import ValidationError

from ecg_ray.service.models import JobOptions, JobStatus, RenderRequest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id      TEXT PRIMARY KEY,   -- the job's ref (models.job_ref): the job id, or tenant.job_id
    seq         INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    request     TEXT NOT NULL,
    status      TEXT NOT NULL,
    outbox      TEXT
)
"""


class JobStore:
    def __init__(self, state_dir: str) -> None:
        os.makedirs(state_dir, exist_ok=True)
        self.path = os.path.join(state_dir, "jobs.sqlite3")
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "outbox" not in columns:  # a table written before final callbacks were kept
            self._db.execute("ALTER TABLE jobs ADD COLUMN outbox TEXT")

    def insert(self, seq: int, request: RenderRequest, fingerprint: str, status: JobStatus) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (job_id, seq, fingerprint, request, status) VALUES (?, ?, ?, ?, ?)",
                (status.ref, seq, fingerprint, request.model_dump_json(), status.model_dump_json()),
            )

    def requeue(self, seq: int, status: JobStatus) -> None:
        """A new attempt of a job: its place in the queue order and its fresh status."""
        with self._lock:
            self._db.execute("UPDATE jobs SET seq = ?, status = ? WHERE job_id = ?",
                             (seq, status.model_dump_json(), status.ref))

    def update(self, status: JobStatus, outbox: dict[str, Any] | None = None) -> None:
        """The job's status; with ``outbox``, the final callback it owes, in the same write: a
        service killed before the callback was delivered sends it when it starts again."""
        with self._lock:
            if outbox is None:
                self._db.execute("UPDATE jobs SET status = ? WHERE job_id = ?",
                                 (status.model_dump_json(), status.ref))
            else:
                self._db.execute("UPDATE jobs SET status = ?, outbox = ? WHERE job_id = ?",
                                 (status.model_dump_json(), json.dumps(outbox), status.ref))

    def outbox_done(self, job_id: str, attempt: int) -> None:
        """The final callback of ``attempt`` was delivered (or given up for good)."""
        with self._lock:
            self._db.execute("UPDATE jobs SET outbox = NULL WHERE job_id = ? AND json_extract(outbox, '$.attempt') = ?",
                             (job_id, attempt))

    def load(self) -> list[tuple[int, RenderRequest, str, JobStatus, dict[str, Any] | None]]:
        """Every job, in submission order, with the final callback it still owes (if any)."""
        with self._lock:
            rows = self._db.execute("SELECT seq, request, fingerprint, status, outbox FROM jobs ORDER BY seq").fetchall()
        out = []
        for seq, req, fp, st, box in rows:
            out.append((seq, stored_request(json.loads(req)), fp, JobStatus.model_validate_json(st),
                        json.loads(box) if box else None))
        return out

    def close(self) -> None:
        with self._lock:
            self._db.close()


def stored_request(raw: dict[str, Any]) -> RenderRequest:
    """A request read back from the table. One accepted under older rules (options outside
    ranges since narrowed to the platform's, e.g. a 160 px width) is kept as it was asked: it was
    accepted, and failing to read it would stop the service from starting at all."""
    try:
        return RenderRequest.model_validate(raw)
    except ValidationError:
        options = raw.get("options") or {}
        req = RenderRequest.model_validate({**raw, "options": {}})
        return req.model_copy(update={"options": JobOptions.model_construct(**options)})
