"""Where finished videos go (a local directory or S3), and downloading inputs from S3.

Both stores take the finished file from the job's temp directory and leave nothing there on
success; on failure the temp file stays for the caller to clean up.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
from typing import Any, Protocol

from pydantic import BaseModel

from .config import DEFAULT_PUBLIC_BASE_URL, Settings
from .containers import CONTAINERS, Container
from .errors import RenderError

log = logging.getLogger(__name__)

_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MULTIPART_BYTES = 8 * 1024 * 1024  # multipart threshold and part size
# Whole-upload retries on transient failures (connection, 5xx), after botocore's own per-request
# retries gave up: attempt 1, wait 1 s, attempt 2, wait 2 s, attempt 3 (no wait after the last).
_BACKOFF_S = (1.0, 2.0)
_UPLOAD_ATTEMPTS = len(_BACKOFF_S) + 1
_sleep = time.sleep  # tests replace it to record the backoff without waiting
_CONNECT_TIMEOUT_S = 10.0
_READ_TIMEOUT_S = 60.0
_TRANSIENT_CODES = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling"}


class Stored(BaseModel):
    """Where a finished video ended up."""

    location: str       # absolute local path, or s3://bucket/key
    download_url: str   # absolute URL the platform downloads from
    file_size: int


class Store(Protocol):
    kind: str  # "local" | "s3"

    def put(self, path: str, job_id: str, container: Container = CONTAINERS["mp4"]) -> Stored: ...

    def local_path(self, job_id: str, container: Container = CONTAINERS["mp4"]) -> str | None: ...

    def delete(self, job_id: str, container: Container = CONTAINERS["mp4"]) -> None: ...


def _check_job_id(job_id: str) -> str:
    # fullmatch, not match: "abc\n" must not pass (re's $ would let a trailing newline through)
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        raise RenderError("invalid_input", f"job id {job_id!r} must be 1-64 of A-Z a-z 0-9 _ -")
    return job_id


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


def _discard(path: str) -> None:
    """Best-effort cleanup on a failure path: never hide the original error."""
    try:
        os.remove(path)
    except OSError:
        pass


class LocalStore:
    """Results in ``output_dir/{job_id}.{mp4|mov|webm}``, served by the service's download endpoint."""

    kind = "local"

    def __init__(self, settings: Settings) -> None:
        self.output_dir = os.path.abspath(settings.output_dir)
        self.public_base_url = (settings.public_base_url or DEFAULT_PUBLIC_BASE_URL).rstrip("/")

    def _final(self, job_id: str, container: Container) -> str:
        return os.path.join(self.output_dir, f"{_check_job_id(job_id)}.{container.ext}")

    def put(self, path: str, job_id: str, container: Container = CONTAINERS["mp4"]) -> Stored:
        final = self._final(job_id, container)
        size = _file_size(path)
        part = os.path.join(self.output_dir, f".{job_id}.{container.ext}.part")
        moved = False
        try:
            os.makedirs(self.output_dir, exist_ok=True)
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
            _discard(part)
            raise RenderError("storage_failed", f"cannot store result at {final}: {exc}") from exc
        if not moved:
            _remove(path)  # only once the copy is in place
        return Stored(
            location=final,
            download_url=f"{self.public_base_url}/api/render/{job_id}/download",
            file_size=size,
        )

    def local_path(self, job_id: str, container: Container = CONTAINERS["mp4"]) -> str | None:
        final = self._final(job_id, container)
        return final if os.path.isfile(final) else None

    def delete(self, job_id: str, container: Container = CONTAINERS["mp4"]) -> None:
        final = self._final(job_id, container)
        try:
            _remove(final)
        except OSError as exc:
            raise RenderError("storage_failed", f"cannot delete {final}: {exc}") from exc


def s3_client(settings: Settings) -> Any:
    """A boto3 S3 client: the configured region and endpoint, standard retries, bounded timeouts.

    Credentials come from boto3's usual chain (environment, profile, IAM role); none are required here.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=settings.aws_region,
        signature_version="s3v4",  # presigned URLs need SigV4 in every current region
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=_CONNECT_TIMEOUT_S,
        read_timeout=_READ_TIMEOUT_S,
        max_pool_connections=16,  # above the transfer threads, so parts do not wait for a connection
        # S3-compatible stores (MinIO, moto, ...) are usually reached by path, not bucket subdomains
        s3={"addressing_style": "path"} if settings.s3_endpoint_url else {},
    )
    # A session per client: boto3's default session is not safe to share between threads.
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=settings.s3_endpoint_url or None, config=config)


def _transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=_MULTIPART_BYTES,
        multipart_chunksize=_MULTIPART_BYTES,
        max_concurrency=8,
        # The classic transfer manager aborts a failed multipart upload; keep it even where awscrt exists.
        preferred_transfer_client="classic",
    )


def _causes(exc: BaseException) -> list[BaseException]:
    """exc and the exceptions it was raised from (boto3 wraps ClientError in S3UploadFailedError)."""
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in chain:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    return chain


def _is_transient(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    for e in _causes(exc):
        if isinstance(e, (ConnectionError, HTTPClientError)):
            return True
        if isinstance(e, ClientError):
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            return status >= 500 or e.response.get("Error", {}).get("Code") in _TRANSIENT_CODES
    return False


def _client_error_code(exc: BaseException) -> str:
    from botocore.exceptions import ClientError

    for e in _causes(exc):
        if isinstance(e, ClientError):
            return str(e.response.get("Error", {}).get("Code", ""))
    return ""


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

    def key(self, job_id: str, container: Container = CONTAINERS["mp4"]) -> str:
        name = f"{_check_job_id(job_id)}.{container.ext}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def put(self, path: str, job_id: str, container: Container = CONTAINERS["mp4"]) -> Stored:
        key = self.key(job_id, container)
        size = _file_size(path)
        where = f"s3://{self.bucket}/{key}"
        multipart = size >= _MULTIPART_BYTES
        try:
            self._upload(path, key, where, container.mime)
        finally:
            if multipart:
                # An attempt cut off while S3 was unreachable could not abort its multipart upload;
                # its parts are invisible but billed. Sweep them now (best effort) whatever the outcome.
                self._abort_open_uploads(key)
        _remove(path)  # only now: on failure the caller still has the file
        return Stored(location=where, download_url=self.presigned_url(key), file_size=size)

    def _upload(self, path: str, key: str, where: str, mime: str = "video/mp4") -> None:
        for attempt in range(1, _UPLOAD_ATTEMPTS + 1):
            try:
                self.client.upload_file(
                    path, self.bucket, key,
                    ExtraArgs={"ContentType": mime},
                    Config=_transfer_config(),
                )
                return
            except Exception as exc:
                transient = _is_transient(exc)
                if not transient or attempt == _UPLOAD_ATTEMPTS:
                    tries = f" after {attempt} attempts" if attempt > 1 else ""
                    raise RenderError("storage_failed", f"cannot upload result to {where}{tries}: {exc}") from exc
                delay = _BACKOFF_S[attempt - 1]
                log.warning("upload to %s failed (attempt %d), retrying in %.0f s: %s", where, attempt, delay, exc)
                _sleep(delay)

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
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self.url_expiry_s
            )
        except Exception as exc:  # e.g. no credentials to sign with
            raise RenderError("storage_failed", f"cannot sign a download URL for s3://{self.bucket}/{key}: {exc}") from exc

    def local_path(self, job_id: str, container: Container = CONTAINERS["mp4"]) -> str | None:
        _check_job_id(job_id)
        return None

    def delete(self, job_id: str, container: Container = CONTAINERS["mp4"]) -> None:
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


def _parse_s3_url(url: str) -> tuple[str, str]:
    # Not urllib.parse: keys may hold '?', '#' and '%' literally, as the AWS CLI treats them.
    if not url.startswith("s3://"):
        raise RenderError("invalid_input", f"{url!r} is not an s3:// URL")
    bucket, _, key = url[len("s3://"):].partition("/")
    if not bucket or not key:
        raise RenderError("invalid_input", f"{url!r} must be s3://bucket/key")
    return bucket, key


def download_s3(url: str, dest: str, settings: Settings) -> None:
    """Download ``s3://bucket/key`` to ``dest``, refusing objects over ``max_input_bytes`` before any byte
    is fetched. On failure nothing is left at ``dest``."""
    from botocore.exceptions import ClientError

    bucket, key = _parse_s3_url(url)
    client = s3_client(settings)
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = _client_error_code(exc)
        why = "no such object or bucket" if code in ("404", "NoSuchKey", "NoSuchBucket") else str(exc)
        raise RenderError("fetch_failed", f"cannot download input {url}: {why}") from exc
    except Exception as exc:
        raise RenderError("fetch_failed", f"cannot download input {url}: {exc}") from exc
    size = int(head.get("ContentLength", 0))
    if size > settings.max_input_bytes:
        raise RenderError("input_too_large", f"input {url} is {size} bytes; the limit is {settings.max_input_bytes}")

    part = f"{dest}.part"
    try:
        _download_checked(client, bucket, key, part, size, head.get("ETag"))
        got = os.path.getsize(part)
        if got != size:  # shrank since the check
            raise OSError(f"got {got} bytes of {size}")
        os.replace(part, dest)
    except Exception as exc:
        _discard(part)
        from .ffmpeg import is_no_space, no_space_error

        if isinstance(exc, OSError) and is_no_space(exc):  # our disk, not the bucket: say so
            raise no_space_error(exc, f"the download of {url}") from None
        raise RenderError("fetch_failed", f"cannot download input {url}: {exc}") from exc


def _download_checked(client: Any, bucket: str, key: str, path: str, size: int, etag: str | None) -> None:
    """s3transfer's (parallel, ranged) download of the very object that was checked. Told its size and
    ETag, it skips its own HEAD; every GET carries If-Match on that ETag, so an object replaced since
    the check (bigger, or two versions mixed into one file) is refused by S3 instead of written."""
    from s3transfer.manager import TransferManager
    from s3transfer.subscribers import BaseSubscriber

    class Manager(TransferManager):
        # s3transfer sets If-Match itself on ranged GETs only; let it through for a single GET too
        ALLOWED_DOWNLOAD_ARGS = [*TransferManager.ALLOWED_DOWNLOAD_ARGS, "IfMatch"]

    class Checked(BaseSubscriber):
        def on_queued(self, future: Any, **kwargs: Any) -> None:
            future.meta.provide_transfer_size(size)
            future.meta.provide_object_etag(etag)  # with the size: no HEAD; and If-Match on ranged GETs

    extra = {"IfMatch": etag} if etag else {}
    with Manager(client, _transfer_config()) as manager:  # cancels what is left on an exception
        manager.download(bucket, key, path, extra_args=extra, subscribers=[Checked()]).result()
