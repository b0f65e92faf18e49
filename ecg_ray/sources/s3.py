"""S3 reads (inputs and define assets given as s3:// URLs) and the client the stores share."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from ecg_ray.config import Settings
from ecg_ray.errors import RenderError
from ecg_ray.files import discard
from ecg_ray.media.ffmpeg import is_no_space, no_space_error
from ecg_ray.sources.watch import TransferWatch

MULTIPART_BYTES = 8 * 1024 * 1024  # multipart threshold and part size
_CONNECT_TIMEOUT_S = 10.0
_READ_TIMEOUT_S = 60.0


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


def transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=MULTIPART_BYTES,
        multipart_chunksize=MULTIPART_BYTES,
        max_concurrency=8,
        # The classic transfer manager aborts a failed multipart upload; keep it even where awscrt exists.
        preferred_transfer_client="classic",
    )


def _parse_s3_url(url: str) -> tuple[str, str]:
    # Not urllib.parse: keys may hold '?', '#' and '%' literally, as the AWS CLI treats them.
    if not url.startswith("s3://"):
        raise RenderError("invalid_input", f"{url!r} is not an s3:// URL")
    bucket, _, key = url[len("s3://"):].partition("/")
    if not bucket or not key:
        raise RenderError("invalid_input", f"{url!r} must be s3://bucket/key")
    return bucket, key


def download_s3(url: str, dest: str, settings: Settings, cancelled: Callable[[], bool] = lambda: False) -> None:
    """Download ``s3://bucket/key`` to ``dest``, refusing objects over ``max_input_bytes`` before any byte
    is fetched. On failure nothing is left at ``dest``. The download is watched as an HTTP one is
    (watch.py): cancelled, past ECG_FETCH_DEADLINE_S or slower than its floor, it ends at once."""
    from botocore.exceptions import ClientError

    bucket, key = _parse_s3_url(url)
    client = s3_client(settings)
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = client_error_code(exc)
        why = "no such object or bucket" if code in ("404", "NoSuchKey", "NoSuchBucket") else str(exc)
        raise RenderError("fetch_failed", f"cannot download input {url}: {why}") from exc
    except Exception as exc:
        raise RenderError("fetch_failed", f"cannot download input {url}: {exc}") from exc
    size = int(head.get("ContentLength", 0))
    if size > settings.max_input_bytes:
        raise RenderError("input_too_large", f"input {url} is {size} bytes; the limit is {settings.max_input_bytes}")

    part = f"{dest}.part"
    try:
        _download_watched(client, bucket, key, part, size, head.get("ETag"), settings, cancelled, url)
        got = os.path.getsize(part)
        if got != size:  # shrank since the check
            raise OSError(f"got {got} bytes of {size}")
        os.replace(part, dest)
    except RenderError:
        discard(part)
        raise
    except Exception as exc:
        discard(part)

        if isinstance(exc, OSError) and is_no_space(exc):  # our disk, not the bucket: say so
            raise no_space_error(exc, f"the download of {url}") from None
        raise RenderError("fetch_failed", f"cannot download input {url}: {exc}") from exc


def _download_watched(client: Any, bucket: str, key: str, path: str, size: int, etag: str | None,
                      settings: Settings, cancelled: Callable[[], bool], shown: str) -> None:
    """_download_checked under a TransferWatch. s3transfer's reads cannot be woken from outside
    (a stalled one waits for botocore's read timeout), so the transfer runs on a thread of its
    own: a stop cancels it and raises at once, and the thread ends by itself, removing what it
    wrote."""
    ended = threading.Event()
    outcome: list[BaseException | None] = []
    futures: list[Any] = []

    def abort() -> None:
        for f in futures:
            f.cancel()

    watch = TransferWatch(abort, settings, cancelled)

    def run() -> None:
        try:
            _download_checked(client, bucket, key, path, size, etag, futures, watch)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            outcome.append(exc)
        finally:
            if watch.stopped.is_set():  # nobody waits for this file any more
                discard(path)
            ended.set()

    with watch:
        threading.Thread(target=run, name="ecg-s3-download", daemon=True).start()
        while not ended.wait(0.1):
            if watch.stopped.is_set():
                err = watch.error(shown)
                assert err is not None
                raise err
    if watch.stopped.is_set():
        err = watch.error(shown)
        assert err is not None
        raise err
    if outcome and outcome[0] is not None:
        raise outcome[0]


def _download_checked(client: Any, bucket: str, key: str, path: str, size: int, etag: str | None,
                      futures: list[Any], watch: TransferWatch) -> None:
    """s3transfer's (parallel, ranged) download of the very object that was checked. Told its size and
    ETag, it skips its own HEAD; every GET carries If-Match on that ETag, so an object replaced since
    the check (bigger, or two versions mixed into one file) is refused by S3 instead of written."""
    from s3transfer.manager import TransferManager
    from s3transfer.subscribers import BaseSubscriber

    class Manager(TransferManager):  # type: ignore[misc]  # s3transfer has no type hints
        # s3transfer sets If-Match itself on ranged GETs only; let it through for a single GET too
        ALLOWED_DOWNLOAD_ARGS = [*TransferManager.ALLOWED_DOWNLOAD_ARGS, "IfMatch"]

    class Checked(BaseSubscriber):  # type: ignore[misc]
        def on_queued(self, future: Any, **kwargs: Any) -> None:
            future.meta.provide_transfer_size(size)
            future.meta.provide_object_etag(etag)  # with the size: no HEAD; and If-Match on ranged GETs

        def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
            watch.got += bytes_transferred

    extra = {"IfMatch": etag} if etag else {}
    with Manager(client, transfer_config()) as manager:  # cancels what is left on an exception
        future = manager.download(bucket, key, path, extra_args=extra, subscribers=[Checked()])
        futures.append(future)
        if watch.stopped.is_set():  # stopped before the transfer was there to cancel
            future.cancel()
        future.result()


def client_error_code(exc: BaseException) -> str:
    from botocore.exceptions import ClientError

    for e in exception_chain(exc):
        if isinstance(e, ClientError):
            return str(e.response.get("Error", {}).get("Code", ""))
    return ""


def exception_chain(exc: BaseException) -> list[BaseException]:
    """exc and the exceptions it was raised from (boto3 wraps ClientError in S3UploadFailedError)."""
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in chain:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    return chain
