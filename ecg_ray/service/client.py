"""Submitting jobs from Python: on the cluster through Ray, or from anywhere over HTTP."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from ecg_ray.errors import RenderError
from ecg_ray.service.models import JobError, JobOutput, JobState, JobStatus, RenderRequest, SubmitOutcome


def submit(request: RenderRequest | dict, address: str | None = None) -> Any:
    """Queue a job on the cluster's render service; ``ray.get`` the returned ObjectRef for its
    :class:`JobOutput` (a failed job raises its :class:`RenderError`)."""
    # Ray and the job service only for this call: the HTTP Client below needs neither.
    import ray

    from ecg_ray.rendering.cluster import ensure_ray
    from ecg_ray.service.jobs import get_service

    ensure_ray(address)
    body = request if isinstance(request, RenderRequest) else dict(request)  # a dict is validated there
    svc = get_service()
    out = SubmitOutcome(**ray.get(svc.submit.remote(body)))
    if out.code != 200 or out.status is None:
        err = out.error or JobError(code="internal_error", message=f"submission answered {out.code}")
        raise RenderError(err.code, err.message)
    return svc.wait.remote(out.status.job_id)



class Client:
    """The HTTP API from Python: ``Client("http://render:8090").wait(client.submit(...).job_id)``.

    ``api_key`` (default: the ECG_API_KEY environment variable) is sent as a bearer token to the
    service, never to the store a download link points at; ``tenant`` is for admin keys acting
    for a tenant (``?tenant=``)."""

    def __init__(self, base_url: str, timeout: float = 30.0, api_key: str | None = None,
                 tenant: str | None = None) -> None:
        import httpx

        key = api_key if api_key is not None else os.environ.get("ECG_API_KEY", "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._params = {"tenant": tenant} if tenant is not None else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers,
                                  params=self._params)
        self._plain = httpx.Client(timeout=timeout)  # download links: their signature is the credential

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        self._plain.close()

    def _json(self, resp: Any) -> Any:
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {"detail": resp.text}
            code = body.get("error_code") if isinstance(body, dict) else None
            raise RenderError(code or ("invalid_request" if resp.status_code == 422 else "internal_error"),
                              f"HTTP {resp.status_code}: {body.get('detail') if isinstance(body, dict) else body}")
        return resp.json()

    def submit(self, video_url: str, scenario: dict, *, job_id: str | None = None, options: dict | None = None,
               callback_url: str | None = None) -> JobStatus:
        req = RenderRequest(job_id=job_id, video_url=video_url, scenario=scenario, options=options or {},
                            callback_url=callback_url)
        return JobStatus(**self._json(self._http.post("/api/render/process", json=req.model_dump(mode="json"))))

    def status(self, job_id: str) -> JobStatus:
        return JobStatus(**self._json(self._http.get(f"/api/render/{job_id}/status")))

    def cancel(self, job_id: str) -> JobStatus:
        return JobStatus(**self._json(self._http.post(f"/api/render/{job_id}/cancel")))

    def queue(self) -> dict:
        return self._json(self._http.get("/api/render/queue/status"))

    def health(self) -> dict:
        return self._http.get("/health").json()

    def wait(self, job_id: str, timeout: float | None = None, poll: float = 1.0,
             on_progress: Callable[[JobStatus], None] | None = None) -> JobOutput:
        """Poll until the job ends; its output, or its error raised as RenderError."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            st = self.status(job_id)
            if on_progress:
                on_progress(st)
            if JobState(st.state).terminal:
                if st.state == "completed" and st.result:
                    return st.result
                err = st.error
                raise RenderError(err.code if err else "internal_error",
                                  err.message if err else st.message)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {st.state} after {timeout} s")
            time.sleep(poll)

    def download(self, job_id: str, dest: str, file: str | None = None) -> str:
        """Save the finished video from its ``download_url`` (the local store's signed link, or
        S3's presigned URL); with ``file`` ("poster", "webvtt", "captions_alpha"), that file made beside it."""
        st = self.status(job_id)
        if st.result is None:
            raise RenderError("not_ready", f"job {job_id!r} is {st.state}")
        url = st.result.download_url
        if file is not None:
            if file not in st.result.files:
                raise RenderError("not_found", f"job {job_id!r} made no {file} "
                                               "(options.poster, options.webvtt, options.alpha_video)")
            url = st.result.files[file].download_url
        # The link carries its own signature (S3 refuses a request with a second credential):
        # sent without the key, through the service's own route or straight to the store.
        with self._plain.stream("GET", url, follow_redirects=True) as resp:
            if resp.status_code != 200:
                resp.read()
                self._json(resp)
            with open(dest, "wb") as fh:
                for chunk in resp.iter_bytes(1 << 20):
                    fh.write(chunk)
        return dest
