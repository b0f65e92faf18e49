"""Where finished videos go (a local directory or S3), and downloading inputs from S3.

Both stores take the finished file from the job's temp directory and leave nothing there on
success; on failure the temp file stays for the caller to clean up.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import tenacity
from pydantic import BaseModel

from ecg_ray.config import DEFAULT_PUBLIC_BASE_URL, Settings
from ecg_ray.errors import RenderError
from ecg_ray.files import discard
from ecg_ray.media.containers import CONTAINERS, Container
from ecg_ray.service.models import split_ref, valid_ref
from ecg_ray.sources.s3 import MULTIPART_BYTES, exception_chain, s3_client, transfer_config
from ecg_ray.sources.watch import TransferWatch

log = logging.getLogger(__name__)

# Whole-upload retries on transient failures (connection, 5xx), after botocore's own per-request
# retries gave up: attempt 1, wait 1 s, attempt 2, wait 2 s, attempt 3 (no wait after the last).
_BACKOFF_S = (1.0, 2.0)
_UPLOAD_ATTEMPTS = len(_BACKOFF_S) + 1
# The wait between attempts: None waits on the upload's stop (a stop ends the wait at once);
# tests set a function to record the backoff without waiting.
_sleep: Callable[[float], None] | None = None
_TRANSIENT_CODES = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling"}


class Stored(BaseModel):
    """Where a finished video ended up."""

    location: str       # absolute local path, or s3://bucket/key
    download_url: str   # absolute URL the platform downloads from
    file_size: int


class Store(Protocol):
    kind: str  # "local" | "s3"

    def put(self, path: str, job_id: str, container: FileKind = CONTAINERS["mp4"],
            cancelled: Callable[[], bool] = lambda: False) -> Stored: ...

    def local_path(self, job_id: str, container: FileKind = CONTAINERS["mp4"]) -> str | None: ...

    def delete(self, job_id: str, container: FileKind = CONTAINERS["mp4"]) -> None: ...


def check_job_id(job_id: str) -> str:
    """A job's ref (models.job_ref: the job id, or tenant.job_id), checked before it names a file."""
    # fullmatch, not match: "abc\n" must not pass (re's $ would let a trailing newline through)
    if not valid_ref(job_id):
        raise RenderError("invalid_input", f"job id {job_id!r} must be 1-64 of A-Z a-z 0-9 _ -")
    return job_id


@dataclass(frozen=True)
class Sidecar:
    """A file stored beside a job's video (``options.poster``, ``options.webvtt``,
    ``options.alpha_video``): named
    ``{job_id}.{ext}`` next to it, served by the download route with ``file={ext}``."""

    kind: str   # its name in the result's ``files``
    ext: str
    mime: str


SIDECARS = {s.ext: s for s in (Sidecar("poster", "poster.jpg", "image/jpeg"),
                               Sidecar("poster", "poster.png", "image/png"),
                               Sidecar("webvtt", "vtt", "text/vtt"),
                               Sidecar("captions_alpha", "captions.webm", "video/webm"),
                               Sidecar("captions_alpha", "captions.mov", "video/quicktime"))}
FileKind = Container | Sidecar


def result_name(ref: str, container: FileKind) -> str:
    """Where a job's result lies under the store's root: ``{job_id}.{ext}``, in a folder of its
    tenant when it has one (one prefix a tenant, for bucket policies and clean-up)."""
    tenant, job_id = split_ref(check_job_id(ref))
    name = f"{job_id}.{container.ext}"
    return f"{tenant}/{name}" if tenant else name


def download_route(base_url: str, ref: str, kind: FileKind | None = None) -> str:
    """The service's download route of a job's video, or of a file beside it (signed by the job
    service before it is handed out)."""
    tenant, job_id = split_ref(check_job_id(ref))
    query = {"tenant": tenant} if tenant else {}
    if isinstance(kind, Sidecar):
        query["file"] = kind.ext
    return f"{base_url}/api/render/{job_id}/download" + (f"?{urlencode(query)}" if query else "")


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError as exc:
        raise RenderError("storage_failed", f"finished file {path!r} cannot be read: {exc}") from exc


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


class LocalStore:
    """Results in ``output_dir/{job_id}.{mp4|mov|webm}``, served by the service's download endpoint."""

    kind = "local"

    def __init__(self, settings: Settings) -> None:
        self.output_dir = os.path.abspath(settings.output_dir)
        self.public_base_url = (settings.public_base_url or DEFAULT_PUBLIC_BASE_URL).rstrip("/")

    def _final(self, job_id: str, container: FileKind) -> str:
        return os.path.join(self.output_dir, result_name(job_id, container))

    def put(self, path: str, job_id: str, container: FileKind = CONTAINERS["mp4"],
            cancelled: Callable[[], bool] = lambda: False) -> Stored:
        final = self._final(job_id, container)
        size = _file_size(path)
        part = os.path.join(os.path.dirname(final), f".{os.path.basename(final)}.part")
        moved = False
        try:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            try:
                os.rename(path, part)  # same filesystem: no copy
                moved = True
            except OSError:
                shutil.copyfile(path, part)  # another filesystem (EXDEV): copy
            os.replace(part, final)  # atomic: readers see no file or the whole file
        except OSError as exc:
            if moved:  # give the caller its file back rather than lose it with the .part
                try:
                    os.rename(part, path)
                except OSError:
                    pass
            discard(part)
            raise RenderError("storage_failed", f"cannot store result at {final}: {exc}") from exc
        if not moved:
            _remove(path)  # only once the copy is in place
        return Stored(
            location=final,
            download_url=download_route(self.public_base_url, job_id, container),
            file_size=size,
        )

    def local_path(self, job_id: str, container: FileKind = CONTAINERS["mp4"]) -> str | None:
        final = self._final(job_id, container)
        return final if os.path.isfile(final) else None

    def delete(self, job_id: str, container: FileKind = CONTAINERS["mp4"]) -> None:
        final = self._final(job_id, container)
        try:
            _remove(final)
        except OSError as exc:
            raise RenderError("storage_failed", f"cannot delete {final}: {exc}") from exc


def _is_transient(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    for e in exception_chain(exc):
        if isinstance(e, (ConnectionError, HTTPClientError)):
            return True
        if isinstance(e, ClientError):
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            return status >= 500 or e.response.get("Error", {}).get("Code") in _TRANSIENT_CODES
    return False


class S3Store:
    """Results in ``s3://{bucket}/{prefix}/{job_id}.{mp4|mov|webm}``, downloaded through presigned GET URLs."""

    kind = "s3"

    def __init__(self, settings: Settings, client: Any = None) -> None:
        if not settings.s3_bucket:
            raise ValueError("the S3 store needs S3_BUCKET")
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix.strip("/")
        self.url_expiry_s = settings.s3_url_expiry_s
        self._settings = settings
        self._client = client
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # boto3 clients do not pickle; a copy in another process makes its own
        state = self.__dict__.copy()
        state["_client"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = s3_client(self._settings)
            return self._client

    def key(self, job_id: str, container: FileKind = CONTAINERS["mp4"]) -> str:
        name = result_name(job_id, container)
        return f"{self.prefix}/{name}" if self.prefix else name

    def put(self, path: str, job_id: str, container: FileKind = CONTAINERS["mp4"],
            cancelled: Callable[[], bool] = lambda: False) -> Stored:
        key = self.key(job_id, container)
        size = _file_size(path)
        where = f"s3://{self.bucket}/{key}"
        multipart = size >= MULTIPART_BYTES
        try:
            self._upload_watched(path, key, where, container.mime, cancelled)
        finally:
            if multipart:
                # An attempt cut off while S3 was unreachable could not abort its multipart upload;
                # its parts are invisible but billed. Sweep them now (best effort) whatever the outcome.
                self._abort_open_uploads(key)
        _remove(path)  # only now: on failure the caller still has the file
        return Stored(location=where, download_url=self.presigned_url(key), file_size=size)

    def _upload_watched(self, path: str, key: str, where: str, mime: str, cancelled: Callable[[], bool]) -> None:
        """_upload under a TransferWatch (ECG_STORE_DEADLINE_S, ECG_STORE_MIN_BYTES_PER_S, a cancel).
        A stalled S3 request cannot be woken, so the upload runs on a thread of its own: a stop
        raises at once; the thread stops at its next progress or attempt, and removes the object
        should its last attempt still have landed."""
        ended = threading.Event()
        outcome: list[BaseException | None] = []
        watch = TransferWatch(lambda: None, self._settings, cancelled, upload=True)

        def progress(n: int) -> None:
            if watch.stopped.is_set():
                raise RuntimeError("upload stopped by its watch")  # fails the transfer here
            watch.got += n

        def run() -> None:
            try:
                self._upload(path, key, where, mime, progress, stop=watch.stopped)
                outcome.append(None)
                if watch.stopped.is_set():  # landed after the job was told it failed
                    self.client.delete_object(Bucket=self.bucket, Key=key)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                outcome.append(exc)
            finally:
                ended.set()

        with watch:
            threading.Thread(target=run, name="ecg-s3-upload", daemon=True).start()
            while not ended.wait(0.1):
                if watch.stopped.is_set():
                    break
        err = watch.error(where)
        if err is not None:
            raise err
        if outcome and outcome[0] is not None:
            raise outcome[0]

    def _upload(self, path: str, key: str, where: str, mime: str = "video/mp4",
                progress: Callable[[int], None] | None = None, stop: threading.Event | None = None) -> None:
        stopped = stop if stop is not None else threading.Event()
        attempts = 0

        def upload() -> None:
            nonlocal attempts
            if stopped.is_set():  # stopped while it waited: no further attempt
                raise RenderError("storage_failed", f"upload to {where} stopped")
            attempts += 1
            self.client.upload_file(path, self.bucket, key, ExtraArgs={"ContentType": mime},
                                    Config=transfer_config(), Callback=progress)

        def retried(state: tenacity.RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome is not None else None
            return exc is not None and not stopped.is_set() and _is_transient(exc)

        def warn(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            log.warning("upload to %s failed (attempt %d), retrying in %.0f s: %s", where, state.attempt_number,
                        state.upcoming_sleep, exc)

        retrying = tenacity.Retrying(
            retry=retried, stop=tenacity.stop_after_attempt(_UPLOAD_ATTEMPTS),
            wait=tenacity.wait_chain(*map(tenacity.wait_fixed, _BACKOFF_S)), before_sleep=warn,
            sleep=_sleep or tenacity.nap.sleep_using_event(stopped), reraise=True)
        try:
            retrying(upload)
        except RenderError:
            raise
        except Exception as exc:
            if stopped.is_set():
                raise
            tries = f" after {attempts} attempts" if attempts > 1 else ""
            raise RenderError("storage_failed", f"cannot upload result to {where}{tries}: {exc}") from exc

    def _abort_open_uploads(self, key: str) -> None:
        try:
            listing = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
            for upload in listing.get("Uploads", []):
                if upload.get("Key") == key:  # the prefix also matches longer keys
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload["UploadId"])
        except Exception as exc:  # S3 still down: a bucket lifecycle rule is the backstop
            log.warning("cannot abort open multipart uploads of s3://%s/%s: %s", self.bucket, key, exc)

    def presigned_url(self, key: str) -> str:
        try:
            return str(self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self.url_expiry_s
            ))
        except Exception as exc:  # e.g. no credentials to sign with
            raise RenderError("storage_failed", f"cannot sign a download URL for s3://{self.bucket}/{key}: {exc}") from exc

    def local_path(self, job_id: str, container: FileKind = CONTAINERS["mp4"]) -> str | None:
        check_job_id(job_id)
        return None

    def delete(self, job_id: str, container: FileKind = CONTAINERS["mp4"]) -> None:
        key = self.key(job_id, container)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)  # S3 answers 204 for a missing key too
        except Exception as exc:
            raise RenderError("storage_failed", f"cannot delete s3://{self.bucket}/{key}: {exc}") from exc


def make_store(settings: Settings) -> Store:
    """The store the settings ask for: ``auto`` is S3 when S3_BUCKET is set, else local."""
    kind = settings.storage
    if kind == "auto":
        kind = "s3" if settings.s3_bucket else "local"
    if kind == "s3":
        return S3Store(settings)
    if kind == "local":
        return LocalStore(settings)
    raise ValueError(f"ECG_STORAGE={settings.storage!r} is not one of auto, local, s3")
