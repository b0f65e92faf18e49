"""The HTTP API: a FastAPI ingress on Ray Serve in front of the job service actor.

Replicas hold no job state and never render: every route is a call to the detached
``JobService`` actor, so a request answers in milliseconds and a replica restart loses nothing.
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations at runtime,
# and Serve's ingress wrapper would leave string annotations unresolved.

import asyncio
import json
import logging
import os
from typing import Any, Optional
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException

from ecg_ray.config import SERVE_LOGGING, load_settings
from ecg_ray.errors import RenderError
from ecg_ray.media.containers import CONTAINERS
from ecg_ray.media.hls import with_query
from ecg_ray.service.auth import OPEN, AuthError, Caller, KeyRing, Right
from ecg_ray.service.handle import JobServiceHandle
from ecg_ray.service.jobs import STORE_RETRY_AFTER_S
from ecg_ray.service.mirror import StatusMirror
from ecg_ray.service.models import (
    TENANT_PATTERN,
    JobError,
    JobList,
    JobState,
    JobStatus,
    QueueStatus,
    RenderRequest,
    SubmitAnswer,
    job_ref,
    valid_job_id,
    valid_tenant,
)
from ecg_ray.service.page import PAGE_FILES, page_response
from ecg_ray.service.preview import PLAYLIST_TYPE
from ecg_ray.service.storage import SIDECARS
from ecg_ray.version import __version__

log = logging.getLogger(__name__)
# The platform's backend gives /health 10 s: answer (503 if need be) well within that.
HEALTH_TIMEOUT_S = 8.0

app = FastAPI(
    title="ecg_ray",
    version=__version__,
    description="Burns MotionText animated captions into videos on a Ray cluster. "
                "Submit a job, follow it by status or callbacks, download the MP4.",
)


class _BodyLimit:
    """Refuse bodies over ECG_MAX_REQUEST_BYTES (413), declared or streamed."""

    def __init__(self, inner: Any, limit: int) -> None:
        self.inner, self.limit = inner, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.inner(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await _too_large(self.limit, send)
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            msg = await receive()
            seen += len(msg.get("body", b""))
            if seen > self.limit:
                raise _TooLarge()
            return msg

        try:
            await self.inner(scope, counted, send)
        except _TooLarge:
            await _too_large(self.limit, send)


class _TooLarge(Exception):
    pass


async def _too_large(limit: int, send: Any) -> None:
    # With an error_code like every other error body (clients branch on it, not on the status).
    body = (f'{{"error_code":"input_too_large","detail":"request body over {limit} bytes '
            f'(ECG_MAX_REQUEST_BYTES)"}}').encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class _Keys:
    """This replica's API keys (auth.KeyRing), made once in the replica's process from its
    settings: RenderAPI's start-up makes it (a bad key file stops the replica with its error),
    or the first request does."""

    ring: Optional[KeyRing] = None

    @classmethod
    def get(cls) -> KeyRing:
        if cls.ring is None:
            cls.ring = KeyRing(load_settings())
        return cls.ring


def _download_path(path: str) -> bool:
    """A route a signed link opens without a key: a download, or a file of a live preview."""
    return path.startswith("/api/render/") and (path.endswith("/download") or "/preview/" in path)


class _Auth:
    """Who is calling, before anything else runs (auth.py): every route but /health and the jobs
    page's shell, including the OpenAPI document and routes that do not exist, answers 401
    without a valid key once keys are configured. A download link carries its own signature,
    checked by the route."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") == "/health":
            return await self.inner(scope, receive, send)
        # Exactly GET /jobs and its script and style (page.PAGE_FILES) go without a key: fixed
        # files that hold no job data, so the page can load and ask for the key; every call it
        # makes to the API carries the key and is checked here like any other.
        if scope.get("method") == "GET" and scope.get("path") in PAGE_FILES:
            scope.setdefault("state", {})["caller"] = None  # (a route needing a caller refuses it)
            return await self.inner(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        raw = headers.get(b"authorization")
        client = scope.get("client")
        try:
            caller: Optional[Caller] = _Keys.get().identify(
                raw.decode("latin-1") if raw is not None else None, client[0] if client else None)
        except AuthError as exc:
            signed = b"sig=" in (scope.get("query_string") or b"")
            if not (raw is None and signed and _download_path(scope.get("path", ""))):
                body = json.dumps({"error_code": "unauthorized", "detail": exc.message}).encode()
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode()),
                                        (b"www-authenticate", b'Bearer realm="ecg_ray"')]})
                await send({"type": "http.response.body", "body": body})
                return
            caller = None  # a signed link: the route checks its signature
        scope.setdefault("state", {})["caller"] = caller
        await self.inner(scope, receive, send)


# Outermost last: a request without a valid key is answered before its body is read.
app.add_middleware(_BodyLimit, limit=load_settings().max_request_bytes)
app.add_middleware(_Auth)

# The OpenAPI document's security scheme; the key itself is checked by _Auth (auto_error off:
# with no keys configured the service is open, and a request without the header is fine).
_bearer = HTTPBearer(auto_error=False, scheme_name="ApiKey",
                     description="An API key (ECG_API_KEYS_FILE) as a bearer token. Not needed when the "
                                 "service has no keys configured, or for a request from ECG_OPEN_NETWORKS.")


def _caller(request: Request) -> Caller:
    caller: Optional[Caller] = getattr(request.state, "caller", OPEN)
    if caller is None:  # a signed link's request reached a route that needs a key
        raise RenderError("forbidden", "this route needs an API key")
    return caller


def _needs(right: Right) -> Any:
    """A route's dependency: the caller, who must have ``right`` (403 ``forbidden`` otherwise)."""

    def check(request: Request, _: Optional[HTTPAuthorizationCredentials] = Security(_bearer)) -> Caller:
        caller = _caller(request)
        if not caller.may(right):
            raise RenderError("forbidden", f"this API key may not {right.value}")
        return caller

    return Depends(check)


def _tenants_seen(caller: Caller, tenant: Optional[str]) -> Optional[str]:
    """Whose jobs a listing shows: every tenant's (None) for admin keys and the open mode unless
    ``?tenant=`` picks one; else the key's own tenant (or 403 for another)."""
    if Right.ADMIN in caller.rights and tenant is None:
        return None
    return _tenant_of(caller, tenant)


def _tenant_of(caller: Caller, tenant: Optional[str]) -> str:
    """The tenant a request acts for: its key's, or (admin keys) the one ``?tenant=`` names."""
    acting = caller.acts_for(tenant)
    if acting is None:
        raise RenderError("forbidden", "this API key may act only for its own tenant")
    return acting


# A tenant's name, or "" (the open tenant's jobs, for admin keys).
_TENANT_QUERY = Query(None, pattern=f"^({TENANT_PATTERN[1:-1]})?$",
                      description="admin keys: the tenant whose job this is (default: the key's own)")


@app.exception_handler(RequestValidationError)
async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's 422 with our error_code, so clients handle every error body the same way.
    errors = [{k: e.get(k) for k in ("loc", "msg", "type")} for e in exc.errors()]
    # A scenario refused while the body is validated (too deep, not Unicode: models.py) is a
    # scenario error like those the job service finds.
    code = "invalid_scenario" if any(e.get("type") == "invalid_scenario" for e in errors) else "invalid_request"
    return JSONResponse({"error_code": code, "detail": errors}, status_code=422)


_HTTP_CODES = {400: "invalid_request", 404: "not_found", 405: "invalid_request", 413: "input_too_large"}


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    # Starlette's and FastAPI's own errors (no such route, wrong method, a body that cannot be
    # parsed: invalid UTF-8, JSON nested past the parser's recursion limit) answered
    # {"detail": ...} without an error_code; every error body has one.
    code = _HTTP_CODES.get(exc.status_code, "internal_error" if exc.status_code >= 500 else "invalid_request")
    return JSONResponse({"error_code": code, "detail": exc.detail}, status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


@app.exception_handler(RenderError)
async def _service_error(request: Request, exc: RenderError) -> JSONResponse:
    # The job service could not answer: the job table (Redis) away is a 503 to retry.
    if exc.code == "store_unavailable":
        return JSONResponse({"error_code": exc.code, "detail": exc.message}, status_code=503,
                            headers={"Retry-After": str(STORE_RETRY_AFTER_S)})
    if exc.code == "forbidden":  # a key without the right, another tenant, a link not signed
        return JSONResponse({"error_code": exc.code, "detail": exc.message}, status_code=403)
    log.error("job service error in %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"error_code": exc.code, "detail": exc.message}, status_code=500)


@app.exception_handler(Exception)
async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Still a 500 (and logged), but with a JSON body a client can read like any other error.
    log.error("unhandled error in %s %s: %r", request.method, request.url.path, exc)
    return JSONResponse({"error_code": "internal_error", "detail": str(exc)[:300]}, status_code=500)


def _error(code: int, error_code: str, message: str, headers: Optional[dict] = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error_code": error_code, "detail": message, **extra}, status_code=code, headers=headers)


def _not_found(job_id: str) -> JSONResponse:
    return _error(404, "not_found", f"no job {job_id!r}")


@serve.deployment(name="RenderAPI", ray_actor_options={"num_cpus": 0}, logging_config=SERVE_LOGGING)
@serve.ingress(app)
class RenderAPI:
    def __init__(self, env: Optional[dict[str, str]] = None) -> None:
        # ``env`` reached this replica's environment too (build_app): one read of the settings.
        settings = load_settings()
        _Keys.ring = KeyRing(settings)  # a key file that does not parse stops the replica, naming it
        self._svc = JobServiceHandle(env)
        max_age = settings.status_cache_s
        self._mirror = StatusMirror(self._svc.changes, max_age) \
            if max_age > 0 else None

    async def _submit(self, req: RenderRequest, tenant: str) -> JSONResponse:
        out = await self._svc.submit(req, tenant)
        if out.code == 200 and out.status is not None:
            self._wrote(out.status)
            answer = SubmitAnswer(**out.status.model_dump(exclude={"status"}), created=out.created)
            return JSONResponse(answer.model_dump(mode="json"), status_code=200)
        headers = {"Retry-After": str(out.retry_after)} if out.retry_after else None
        extra = {"job": out.status.model_dump(mode="json")} if out.status else {}
        err = out.error or JobError(code="internal_error", message=f"the job service answered {out.code}")
        return _error(out.code, err.code, err.message, headers=headers, **extra)

    @app.post("/api/render/process", status_code=200, response_model=SubmitAnswer,
              responses={401: {}, 403: {}, 409: {}, 413: {}, 422: {}, 429: {}})
    async def process(self, req: RenderRequest, caller: Caller = _needs(Right.SUBMIT),
                      tenant: Optional[str] = _TENANT_QUERY) -> JSONResponse:
        """Submit a job. 200 with its status once accepted: ``created`` is true for a new job, false
        for the same job_id and body again (that job, whatever its state). Job ids are unique per
        tenant: the same id under another tenant is another job."""
        return await self._submit(req, _tenant_of(caller, tenant))

    @app.post("/render", status_code=200, response_model=SubmitAnswer, include_in_schema=True,
              responses={401: {}, 403: {}, 409: {}, 413: {}, 422: {}, 429: {}})
    async def render_alias(self, req: RenderRequest, caller: Caller = _needs(Right.SUBMIT),
                           tenant: Optional[str] = _TENANT_QUERY) -> JSONResponse:
        """The seed's route (camelCase bodies): same as /api/render/process."""
        return await self._submit(req, _tenant_of(caller, tenant))

    @app.get("/api/render/queue/status", response_model=QueueStatus, responses={401: {}, 403: {}})
    async def queue_status(self, caller: Caller = _needs(Right.READ),
                           tenant: Optional[str] = _TENANT_QUERY) -> QueueStatus:
        """The queue and the running jobs: a tenant's own by job id; admin keys (and the open
        mode) see every tenant's by ref (``tenant.job_id``) unless ``?tenant=`` picks one."""
        return await self._svc.queue(_tenants_seen(caller, tenant))

    @app.get("/api/render/jobs", response_model=JobList, responses={401: {}, 403: {}, 422: {}})
    async def list_jobs(self, caller: Caller = _needs(Right.READ), tenant: Optional[str] = _TENANT_QUERY,
                        limit: int = Query(50, ge=1, le=500, description="at most this many jobs"),
                        state: Optional[list[JobState]] = Query(
                            None, description="only jobs in these states (repeat it: ?state=queued&state=processing)"),
                        ) -> JobList:
        """Recent jobs, most recently submitted first (a new attempt counts as submitted anew),
        each as its status: a tenant's own; admin keys (and the open mode) see every tenant's
        unless ``?tenant=`` picks one. ``more``: other jobs match beyond ``limit``."""
        return await self._svc.jobs(limit, _tenants_seen(caller, tenant), state or ())

    @app.get("/api/render/{job_id}/status", response_model=JobStatus, responses={401: {}, 403: {}, 404: {}})
    async def status(self, job_id: str, caller: Caller = _needs(Right.READ),
                     tenant: Optional[str] = _TENANT_QUERY) -> Any:
        """At most ECG_STATUS_CACHE_S old (this replica's mirror), never older than what this
        replica answered before."""
        ref = job_ref(_tenant_of(caller, tenant), job_id)
        body = await self._mirror.get(ref) if self._mirror else None
        if body is not None:  # already a valid JobStatus: sent as is, without validating it again
            return Response(body, media_type="application/json")
        st = await self._svc.status(ref) if valid_job_id(job_id) else None
        if st is None:
            return _not_found(job_id)
        self._remember(st)
        return st

    @app.post("/api/render/{job_id}/cancel", response_model=JobStatus, responses={401: {}, 403: {}, 404: {}})
    async def cancel(self, job_id: str, caller: Caller = _needs(Right.CANCEL),
                     tenant: Optional[str] = _TENANT_QUERY) -> Any:
        ref = job_ref(_tenant_of(caller, tenant), job_id)
        st = await self._svc.cancel(ref) if valid_job_id(job_id) else None
        if st is None:
            return _not_found(job_id)
        self._wrote(st)
        return st

    def _remember(self, st: Optional[JobStatus]) -> None:
        if st is not None and self._mirror is not None:
            self._mirror.put(st.model_dump(mode="json"))

    def _wrote(self, st: Optional[JobStatus]) -> None:
        if self._mirror is not None:
            self._remember(st)
            self._mirror.invalidate()

    @app.get("/api/render/{job_id}/download", responses={307: {}, 401: {}, 403: {}, 404: {}, 409: {}})
    async def download(self, request: Request, job_id: str, tenant: Optional[str] = None,
                       file: Optional[str] = None, expires: Optional[str] = None, sig: Optional[str] = None,
                       _: Optional[HTTPAuthorizationCredentials] = Security(_bearer)) -> Any:
        """The finished video from the local store (Range requests work); with S3, a redirect to a
        freshly presigned URL. Through a signed link (the job's ``download_url``, no key needed):
        403 without a valid, unexpired signature, whether or not the job is there. With API keys
        configured, a request without a signature whose key may read the job is sent to a fresh
        link (307): an expired link is renewed this way. ``file`` names a file made beside the
        video (``poster.jpg``, ``poster.png``, ``vtt``: the result's ``files``)."""
        if not valid_job_id(job_id) or (tenant is not None and not valid_tenant(tenant)) \
                or (file is not None and file not in SIDECARS):
            return _error(403, "forbidden", "a download link needs its signature")
        caller: Optional[Caller] = getattr(request.state, "caller", OPEN)
        # Renewed only where keys exist: in the open mode a job id alone must not open the file.
        if not sig and caller is not None and _Keys.get().enabled and caller.may(Right.READ):
            link = await self._svc.download_link(job_ref(_tenant_of(caller, tenant), job_id), file)
            if link is None:
                return _not_found(job_id)
            return JSONResponse({"download_url": link}, status_code=307, headers={"Location": link})
        ref = job_ref(tenant or "", job_id)
        path = await self._svc.local_path(ref, expires, sig, file)
        if not path:
            st = await self._svc.status(ref)
            if st is None:
                return _not_found(job_id)
            url = await self._svc.fresh_download_url(ref, expires, sig, file)
            if st.state == JobState.COMPLETED and url:  # stored in S3: send the client there, freshly signed
                return JSONResponse({"download_url": url}, status_code=307, headers={"Location": url})
            return _error(409, "not_ready", f"job {job_id!r} is {st.state.value}")
        if file is not None:
            side = SIDECARS[file]
            return FileResponse(path, media_type=side.mime, filename=f"{job_id}.{side.ext}")
        ext = os.path.splitext(path)[1].lstrip(".")
        box = CONTAINERS.get(ext, CONTAINERS["mp4"])
        return FileResponse(path, media_type=box.mime, filename=f"{job_id}.{box.ext}")

    @app.get("/api/render/{job_id}/preview/{name}", responses={307: {}, 403: {}, 404: {}})
    async def preview(self, job_id: str, name: str, tenant: Optional[str] = None, expires: Optional[str] = None,
                      sig: Optional[str] = None) -> Any:
        """A file of the job's live preview (its ``preview_url``: ``master.m3u8``), through the
        signed link in its status, no key needed: 403 without a valid signature. The playlists
        come with the signature after each of their URIs, so a plain HLS player opens the rest;
        fragments stored in S3 are redirects to presigned URLs. 404 once the preview is removed
        (ECG_PREVIEW_TTL_S after the job ended)."""
        if not valid_job_id(job_id) or (tenant is not None and not valid_tenant(tenant)):
            return _error(403, "forbidden", "a preview link needs its signature")
        ref = job_ref(tenant or "", job_id)
        found = await self._svc.preview_file(ref, name, expires, sig)
        if found is None:
            return _error(404, "not_found", f"job {job_id!r} has no preview file {name!r}")
        if "text" in found:
            query = "?" + urlencode({**({"tenant": tenant} if tenant else {}), "expires": expires, "sig": sig})
            # no-cache: the playlist grows while the job renders
            return Response(with_query(found["text"], query), media_type=PLAYLIST_TYPE,
                            headers={"Cache-Control": "no-cache"})
        if "url" in found:
            return JSONResponse({"url": found["url"]}, status_code=307, headers={"Location": found["url"]})
        media = "video/mp4" if name.endswith(".mp4") else "video/iso.segment"
        return FileResponse(found["path"], media_type=media)

    @app.get("/jobs", include_in_schema=False)
    async def jobs_page(self) -> Response:
        """The jobs page (page/): the queue, recent jobs and the cluster's capacity, polled from
        the API with the key the viewer gives."""
        return page_response("/jobs")

    @app.get("/jobs/{asset}", include_in_schema=False)
    async def jobs_page_asset(self, asset: str) -> Response:
        return page_response(f"/jobs/{asset}")

    @app.get("/health")
    async def health(self) -> JSONResponse:
        """Ray, GPUs, the encoder chosen by a one-frame test, browsers ready. 503 when not ready."""
        try:
            h = await asyncio.wait_for(self._svc.health(), timeout=HEALTH_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - an unhealthy answer, not a crash
            return JSONResponse({"ok": False, "problems": [f"job service not answering: {exc}"[:500]]},
                                status_code=503)
        h["version"] = __version__
        return JSONResponse(h, status_code=200 if h["ok"] else 503)


def build_app(env: Optional[dict[str, str]] = None) -> Any:
    """The Serve application (``serve run serve_app:app`` uses this with the environment's settings)."""
    if not env:
        return RenderAPI.bind(env)  # type: ignore[attr-defined]  # Serve's decorator adds bind()
    # The replicas read their settings (API keys, the status cache) from the same variables.
    return RenderAPI.options(  # type: ignore[attr-defined]
        ray_actor_options={"num_cpus": 0, "runtime_env": {"env_vars": env}}).bind(env)
