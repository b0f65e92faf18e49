"""The job service as the HTTP replicas call it: one typed method per call, models back.

The job service is a detached Ray actor (``jobs.JobService``); a replica holds a handle to it.
If the actor was restarted (a new one under the same name), a call looks it up again once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import ray
import tenacity

from ecg_ray.errors import RenderError
from ecg_ray.service.jobs import get_service
from ecg_ray.service.models import JobList, JobState, JobStatus, QueueStatus, RenderRequest, SubmitOutcome


def _actor_gone(exc: BaseException) -> bool:
    # (a RayTaskError can also be an instance of its cause's class: the service's own error is not retried)
    return isinstance(exc, ray.exceptions.RayActorError) and not isinstance(exc, ray.exceptions.RayTaskError)


class JobServiceHandle:
    def __init__(self, env: Optional[dict[str, str]] = None) -> None:
        self._env = env
        self._actor = get_service(env)

    async def _call(self, method: str, *args: Any) -> Any:
        def look_up_again(state: tenacity.RetryCallState) -> None:
            if state.attempt_number > 1:  # the actor was gone: 0.5 s later, its successor
                self._actor = get_service(self._env)

        async for attempt in tenacity.AsyncRetrying(
                retry=tenacity.retry_if_exception(_actor_gone),
                stop=tenacity.stop_after_attempt(2), wait=tenacity.wait_fixed(0.5), before=look_up_again,
                reraise=True):
            with attempt:
                try:
                    return await getattr(self._actor, method).remote(*args)
                except ray.exceptions.RayTaskError as exc:
                    # The job service's own error (the job table unreachable: a 503), as it raised it.
                    if isinstance(exc.cause, RenderError):
                        raise exc.cause from None
                    raise
        raise AssertionError("unreachable")  # (reraise=True: the last attempt's error comes out)

    @staticmethod
    def _status(raw: Optional[dict[str, Any]]) -> Optional[JobStatus]:
        return JobStatus.model_validate(raw) if raw is not None else None

    # Jobs are named by their ref (models.job_ref: tenant and job id); the open tenant's ref is
    # the job id itself.
    async def submit(self, req: RenderRequest, tenant: str = "") -> SubmitOutcome:
        # The model itself crosses to the job service (pickled): validated once, here at the
        # HTTP edge, not parsed again from a dict there.
        return SubmitOutcome.model_validate(await self._call("submit", req, tenant))

    async def status(self, ref: str) -> Optional[JobStatus]:
        return self._status(await self._call("status", ref))

    async def cancel(self, ref: str) -> Optional[JobStatus]:
        return self._status(await self._call("cancel", ref))

    async def queue(self, tenant: Optional[str] = None) -> QueueStatus:
        """All jobs (None), or one tenant's."""
        return QueueStatus.model_validate(await self._call("queue_status", tenant))

    async def jobs(self, limit: int, tenant: Optional[str] = None, states: Sequence[JobState] = ()) -> JobList:
        """The most recently submitted jobs, newest first: every tenant's (None), or one's."""
        return JobList.model_validate(await self._call("jobs", limit, tenant, [s.value for s in states]))

    async def changes(self, since: int, incarnation: str) -> dict[str, Any]:
        """The change feed for a replica's status mirror (mirror.py): statuses as JSON-ready
        dicts, kept raw because the mirror serves them as they are, hundreds of times a second."""
        result: dict[str, Any] = await self._call("changes", since, incarnation)
        return result

    async def local_path(self, ref: str, expires: Optional[str], sig: Optional[str],
                         file: Optional[str] = None) -> Optional[str]:
        path: Optional[str] = await self._call("local_path", ref, expires, sig, file)
        return path

    async def fresh_download_url(self, ref: str, expires: Optional[str], sig: Optional[str],
                                 file: Optional[str] = None) -> Optional[str]:
        url: Optional[str] = await self._call("fresh_download_url", ref, expires, sig, file)
        return url

    async def download_link(self, ref: str, file: Optional[str] = None) -> Optional[str]:
        """A freshly signed (local) or presigned (S3) link to a completed job's file, for a caller
        whose key may read it; None when the job has no file (yet)."""
        url: Optional[str] = await self._call("download_link", ref, file)
        return url

    async def preview_file(self, ref: str, name: str, expires: Optional[str],
                           sig: Optional[str]) -> Optional[dict[str, str]]:
        """A file of a job's live preview (JobService.preview_file); RenderError(forbidden) unsigned."""
        found: Optional[dict[str, str]] = await self._call("preview_file", ref, name, expires, sig)
        return found

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("health")
        return result
