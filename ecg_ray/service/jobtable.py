"""The job table the job service works on: every job's request and status, the queue, who
renders what (leases), cancel requests and the change feed of the replicas' status mirrors.

Two kinds, one contract (``JobTable``): SQLite in ECG_STATE_DIR (sqlite_table.py, the embedded
default: one service instance) and Redis when REDIS_URL is set (redis_table.py: several
instances, each its own Ray cluster, share one queue; a job is rendered by the instance holding
its lease, and another takes it over when that lease lapses).

Jobs are keyed by their ref (``models.job_ref``: the job id, or ``tenant.job_id`` for a job
submitted with an API key), so the same job id under two tenants is two jobs.
"""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from ecg_ray.errors import RenderError
from ecg_ray.service.models import JobState, JobStatus, RenderRequest


@dataclass
class JobRecord:
    seq: int                          # submission order (a new attempt gets a new one)
    request: RenderRequest
    fingerprint: str
    status: JobStatus
    outbox: dict[str, Any] | None = None  # the final callback owed: {status, attempt, url, fields}


class StoreUnavailable(RenderError):
    """The job table cannot be reached (Redis down): HTTP 503 with Retry-After."""

    def __init__(self, message: str) -> None:
        super().__init__("store_unavailable", message)

    def __reduce__(self) -> tuple[type, tuple[str, ...]]:
        return (StoreUnavailable, (self.message,))


class JobTable(Protocol):
    kind: str           # "sqlite" | "redis"
    incarnation: str    # changes when the change feed starts again (a mirror then resyncs)

    def lock(self, job_id: str) -> AbstractContextManager[Any]:
        """Serializes decisions about one job (submit, cancel) across threads and instances."""
        ...

    def get(self, job_id: str) -> JobRecord | None: ...

    def add(self, rec: JobRecord) -> JobRecord:
        """A new job, or a new attempt of one: the record (with the next seq) and its place last
        in the queue."""
        ...

    def save(self, status: JobStatus, outbox: dict[str, Any] | None = None) -> None:
        """The job's status (and with ``outbox``, the final callback it owes, in the same write)."""
        ...

    def touch(self, status: JobStatus) -> None:
        """A status change between durable writes (SQLite: kept in memory; Redis: written)."""
        ...

    def outbox_done(self, job_id: str, attempt: int) -> None: ...

    def owed(self) -> list[JobRecord]:
        """Ended jobs whose final callback is not settled, for an instance that starts."""
        ...

    def queued(self) -> list[str]:
        """Queued job ids, next first."""
        ...

    def running(self) -> list[str]:
        """Jobs being rendered or waiting to be taken over, by any instance."""
        ...

    def unqueue(self, job_id: str) -> bool:
        """Take a job out of the queue (or out of those waiting to be taken over); True when this
        call did (the caller then ends it)."""
        ...

    def claim(self) -> tuple[str, bool] | None:
        """The next job for this instance to render, under its lease: a running job whose
        instance is gone first (True: it goes on after an interruption), else the next queued."""
        ...

    def release(self, job_id: str, ended: bool) -> None:
        """This instance is done with the job (``ended``: it reached a final state)."""
        ...

    def leases(self, job_ids: list[str]) -> dict[str, str]:
        """Who holds each running job: "<instance>/<run>" ("" where none: waiting to be taken over)."""
        ...

    def renew(self, job_ids: list[str]) -> set[str]:
        """Renew this instance's leases; the ids whose lease is still this instance's."""
        ...

    def request_cancel(self, job_id: str) -> None: ...

    def cancel_requested(self, job_ids: list[str]) -> set[str]: ...

    def changes(self, since: int, full: bool) -> tuple[int, list[JobStatus]]:
        """(version, statuses changed after ``since``); ``full``: every unfinished job and the
        most recently changed finished ones."""
        ...

    def recent(self, limit: int, tenant: str | None = None, states: Collection[JobState] = ()) -> list[JobStatus]:
        """The most recently submitted jobs, newest first (a new attempt counts as submitted
        anew): at most ``limit``, only ``tenant``'s (None: every tenant's), only those in
        ``states`` (empty: any). For the jobs list and page, not for decisions."""
        ...

    def wait(self, timeout: float) -> None:
        """Until work may be there to claim (or ``timeout``)."""
        ...

    def secret(self, name: str) -> bytes:
        """A random secret made once and kept with the jobs (the same for every instance)."""
        ...

    def wake(self) -> None:
        """End the workers' waits (closing)."""
        ...

    def describe(self) -> dict[str, Any]:
        """For health and the queue view: the kind and whether it answers."""
        ...

    def close(self) -> None: ...
