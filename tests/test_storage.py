"""Result stores and S3 input download, against real files and moto's S3 over HTTP on loopback.

Faults are injected by a proxy between the store and moto (tests/s3util.FaultProxy), so what the
store sees is what it would see from a failing S3: 500s, dropped connections, cut-off bodies.
"""

from __future__ import annotations

import errno
import os
import pickle
import socket
import urllib.request
from pathlib import Path

import pytest

from ecg_ray.config import Settings
from ecg_ray.errors import RenderError
from ecg_ray.service import storage
from ecg_ray.service.storage import LocalStore, S3Store, Stored, make_store
from ecg_ray.sources.s3 import download_s3

from .s3util import FaultProxy, MotoS3, aws_env

MiB = 1024 * 1024
BAD_JOB_IDS = ["", "../escape", "a/b", "a" * 65, "abc\n", "caf\u00e9", ".hidden", "a b"]


def _file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The store's backoff waits, recorded instead of slept."""
    waited: list[float] = []
    monkeypatch.setattr(storage, "_sleep", waited.append)
    return waited


@pytest.fixture
def proxy(s3_server: MotoS3):
    p = FaultProxy(s3_server.port)
    yield p
    p.close()


@pytest.fixture
def s3(s3_server: MotoS3, monkeypatch) -> MotoS3:
    aws_env(monkeypatch)
    return s3_server


def _s3_settings(s3: MotoS3, bucket: str, endpoint: str | None = None, **kw) -> Settings:
    return Settings(storage="s3", s3_bucket=bucket, s3_endpoint_url=endpoint or s3.endpoint_url, **kw)


def _open_uploads(s3: MotoS3, bucket: str, key: str) -> list[str]:
    listing = s3.client().list_multipart_uploads(Bucket=bucket, Prefix=key)
    return [u["UploadId"] for u in listing.get("Uploads", []) if u["Key"] == key]


def _exists(s3: MotoS3, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.client().head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        assert exc.response["Error"]["Code"] in ("404", "NoSuchKey")
        return False


# ---------------------------------------------------------------- local store


def test_local_put_moves_file_through_part_name(tmp_path, monkeypatch):
    out = tmp_path / "deep" / "out"  # missing: put creates it
    store = LocalStore(Settings(output_dir=str(out), public_base_url="https://render.example/base/"))
    src = tmp_path / "work" / "result.mp4"
    data = _file(src, 300_000)

    replaced: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(a, b):  # at the moment of the swap, the final name must not show a half file
        assert Path(a).read_bytes() == data
        replaced.append((str(a), str(b)))
        real_replace(a, b)

    monkeypatch.setattr(storage.os, "replace", spy)
    stored = store.put(str(src), "job_1-A")

    final = out / "job_1-A.mp4"
    assert replaced == [(str(out / ".job_1-A.mp4.part"), str(final))]
    assert not src.exists()
    assert final.read_bytes() == data
    assert sorted(p.name for p in out.iterdir()) == ["job_1-A.mp4"]  # no .part left
    assert stored == Stored(
        location=str(final),
        download_url="https://render.example/base/api/render/job_1-A/download",
        file_size=300_000,
    )
    assert os.path.isabs(stored.location)
    assert store.kind == "local"


def test_local_put_across_filesystems_copies_then_removes_source(tmp_path, monkeypatch):
    store = LocalStore(Settings(output_dir=str(tmp_path / "out")))
    src = tmp_path / "result.mp4"
    data = _file(src, 50_000)

    def cross_device(a, b):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(storage.os, "rename", cross_device)
    stored = store.put(str(src), "j2")
    assert Path(stored.location).read_bytes() == data
    assert not src.exists()
    assert os.listdir(tmp_path / "out") == ["j2.mp4"]


def test_local_put_replaces_an_earlier_result(tmp_path):
    store = LocalStore(Settings(output_dir=str(tmp_path / "out")))
    _file(tmp_path / "a.mp4", 1000)
    store.put(str(tmp_path / "a.mp4"), "j")
    second = _file(tmp_path / "b.mp4", 2000)
    stored = store.put(str(tmp_path / "b.mp4"), "j")
    assert Path(stored.location).read_bytes() == second and stored.file_size == 2000


def test_local_put_failure_keeps_source(tmp_path):
    blocker = tmp_path / "out"
    blocker.write_text("a file where the output directory should be")
    store = LocalStore(Settings(output_dir=str(blocker)))
    src = tmp_path / "result.mp4"
    data = _file(src, 1000)
    with pytest.raises(RenderError) as ei:
        store.put(str(src), "j")
    assert ei.value.code == "storage_failed" and str(blocker) in ei.value.message
    assert src.read_bytes() == data


@pytest.mark.parametrize("job_id", BAD_JOB_IDS)
def test_local_refuses_bad_job_ids(tmp_path, job_id):
    out = tmp_path / "out"
    store = LocalStore(Settings(output_dir=str(out)))
    src = tmp_path / "result.mp4"
    _file(src, 100)
    for call in (lambda: store.put(str(src), job_id), lambda: store.local_path(job_id), lambda: store.delete(job_id)):
        with pytest.raises(RenderError) as ei:
            call()
        assert ei.value.code == "invalid_input"
    assert src.exists() and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.mp4"]


def test_local_path_and_idempotent_delete(tmp_path):
    store = LocalStore(Settings(output_dir=str(tmp_path / "out")))
    assert store.local_path("j") is None
    _file(tmp_path / "r.mp4", 10)
    stored = store.put(str(tmp_path / "r.mp4"), "j")
    assert store.local_path("j") == stored.location
    assert store.local_path("other") is None
    store.delete("j")
    assert store.local_path("j") is None and not os.path.exists(stored.location)
    store.delete("j")  # again: nothing to do, no error
    store.delete("never-stored")


# ---------------------------------------------------------------- choosing a store


def test_make_store(tmp_path):
    assert isinstance(make_store(Settings(output_dir=str(tmp_path))), LocalStore)
    s3store = make_store(Settings(s3_bucket="b"))
    assert isinstance(s3store, S3Store) and s3store.kind == "s3"
    assert isinstance(make_store(Settings(storage="local", s3_bucket="b")), LocalStore)
    assert isinstance(make_store(Settings(storage="s3", s3_bucket="b")), S3Store)
    with pytest.raises(ValueError, match="S3_BUCKET"):
        make_store(Settings(storage="s3"))
    with pytest.raises(ValueError, match="ECG_STORAGE"):
        make_store(Settings(storage="ftp"))


def test_s3_store_pickles_without_its_client(s3):
    store = S3Store(_s3_settings(s3, "b"))
    assert store.client is not None  # made lazily
    copy = pickle.loads(pickle.dumps(store))
    assert copy.bucket == "b" and copy._client is None
    assert copy.client is not store.client


# ---------------------------------------------------------------- S3 store


@pytest.mark.parametrize(("prefix", "key"), [("renders", "renders/j-1.mp4"), ("", "j-1.mp4"), ("/a/b/", "a/b/j-1.mp4")])
def test_s3_put_small_file(s3, tmp_path, prefix, key):
    bucket = s3.create_bucket()
    store = make_store(_s3_settings(s3, bucket, s3_prefix=prefix, s3_url_expiry_s=600))
    src = tmp_path / "result.mp4"
    data = _file(src, 200_000)

    stored = store.put(str(src), "j-1")

    assert not src.exists()
    assert stored.location == f"s3://{bucket}/{key}" and stored.file_size == len(data)
    obj = s3.client().get_object(Bucket=bucket, Key=key)
    assert obj["Body"].read() == data
    assert obj["ContentType"] == "video/mp4"
    assert "-" not in obj["ETag"]  # one PUT, below the multipart threshold
    # The presigned URL goes to the configured endpoint and works without any AWS client.
    assert stored.download_url.startswith(f"{s3.endpoint_url}/{bucket}/{key}?")
    assert "X-Amz-Expires=600" in stored.download_url
    with urllib.request.urlopen(stored.download_url, timeout=30) as resp:
        assert resp.read() == data
    assert store.local_path("j-1") is None


def test_s3_put_large_file_goes_multipart(s3, tmp_path):
    bucket = s3.create_bucket()
    store = make_store(_s3_settings(s3, bucket))
    src = tmp_path / "result.mp4"
    data = _file(src, 17 * MiB)  # 8 + 8 + 1 MiB

    stored = store.put(str(src), "big")

    key = "renders/big.mp4"
    obj = s3.client().get_object(Bucket=bucket, Key=key)
    assert obj["ETag"].strip('"').endswith("-3")  # a multipart object's ETag counts its parts
    assert obj["ContentType"] == "video/mp4"
    assert obj["Body"].read() == data
    with urllib.request.urlopen(stored.download_url, timeout=60) as resp:
        assert resp.read() == data
    assert stored.file_size == 17 * MiB and not src.exists()
    assert _open_uploads(s3, bucket, key) == []


def _unreachable_store(s3) -> tuple[S3Store, str]:
    """A store whose S3 endpoint is a port nothing listens on; its bucket."""
    bucket = s3.create_bucket()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    return S3Store(_s3_settings(s3, bucket, endpoint=closed)), bucket


def test_s3_unreachable_fails_after_retries_and_keeps_file(s3, tmp_path, sleeps):
    store, bucket = _unreachable_store(s3)
    src = tmp_path / "result.mp4"
    data = _file(src, 100_000)

    with pytest.raises(RenderError) as ei:
        store.put(str(src), "down")

    assert ei.value.code == "storage_failed"
    assert f"s3://{bucket}/renders/down.mp4" in ei.value.message and "after 3 attempts" in ei.value.message
    assert "connect" in ei.value.message.lower()  # the cause is named
    assert sleeps == [1.0, 2.0]
    assert src.read_bytes() == data  # the caller cleans up
    assert not _exists(s3, bucket, "renders/down.mp4")


def test_s3_failing_multipart_is_aborted_every_attempt(s3, proxy, tmp_path, sleeps):
    bucket = s3.create_bucket()
    key = "renders/broken.mp4"
    # CompleteMultipartUpload answers 500: all parts get uploaded, then the upload cannot finish.
    proxy.fault = lambda method, path: "500" if method == "POST" and "uploadId=" in path else None
    store = S3Store(_s3_settings(s3, bucket, endpoint=proxy.endpoint_url))
    src = tmp_path / "result.mp4"
    data = _file(src, 17 * MiB)

    with pytest.raises(RenderError) as ei:
        store.put(str(src), "broken")

    assert ei.value.code == "storage_failed" and f"s3://{bucket}/{key}" in ei.value.message
    assert "InternalError" in ei.value.message
    assert sleeps == [1.0, 2.0]
    assert proxy.count("POST", "?uploads") == 3  # a multipart upload was really started each time
    assert proxy.count("PUT", "partNumber=") == 9
    assert proxy.count("DELETE", "uploadId=") >= 3  # and aborted
    assert _open_uploads(s3, bucket, key) == []
    assert not _exists(s3, bucket, key)
    assert src.read_bytes() == data


def test_s3_down_mid_upload_then_back_leaves_no_orphan_upload(s3, proxy, tmp_path, monkeypatch):
    bucket = s3.create_bucket()
    key = "renders/flaky.mp4"

    def fault(method: str, path: str):
        if method == "PUT" and "partNumber=2" in path and proxy.count("POST", "?uploads") == 1:
            proxy.down = True  # S3 goes away during the first attempt, so its abort cannot get through
        return None

    open_while_down: list[list[str]] = []

    def backoff(seconds: float) -> None:
        open_while_down.append(_open_uploads(s3, bucket, key))
        proxy.down = False  # back before the next attempt

    proxy.fault = fault
    monkeypatch.setattr(storage, "_sleep", backoff)
    store = S3Store(_s3_settings(s3, bucket, endpoint=proxy.endpoint_url))
    src = tmp_path / "result.mp4"
    data = _file(src, 17 * MiB)

    stored = store.put(str(src), "flaky")

    assert len(open_while_down) == 1 and len(open_while_down[0]) == 1  # attempt 1 left its upload open
    assert proxy.count("POST", "?uploads") == 2
    assert _open_uploads(s3, bucket, key) == []  # swept after the successful attempt
    assert s3.client().get_object(Bucket=bucket, Key=key)["Body"].read() == data
    assert stored.file_size == len(data) and not src.exists()


def test_s3_missing_bucket_fails_at_once(s3, tmp_path, sleeps):
    store = S3Store(_s3_settings(s3, "no-such-bucket-here"))
    src = tmp_path / "result.mp4"
    _file(src, 1000)
    with pytest.raises(RenderError) as ei:
        store.put(str(src), "j")
    assert ei.value.code == "storage_failed"
    assert "s3://no-such-bucket-here/renders/j.mp4" in ei.value.message and "NoSuchBucket" in ei.value.message
    assert sleeps == []  # a client error is not retried
    assert src.exists()


def test_s3_delete_is_idempotent_and_ids_are_checked(s3, tmp_path):
    bucket = s3.create_bucket()
    store = S3Store(_s3_settings(s3, bucket))
    _file(tmp_path / "r.mp4", 1000)
    store.put(str(tmp_path / "r.mp4"), "j")
    assert _exists(s3, bucket, "renders/j.mp4")
    store.delete("j")
    assert not _exists(s3, bucket, "renders/j.mp4")
    store.delete("j")
    for job_id in BAD_JOB_IDS:
        with pytest.raises(RenderError) as ei:
            store.put(str(tmp_path / "r.mp4"), job_id)
        assert ei.value.code == "invalid_input"


# ---------------------------------------------------------------- S3 input download


def test_download_s3(s3, tmp_path):
    bucket = s3.create_bucket()
    data = os.urandom(9 * MiB)  # above the multipart threshold: ranged GETs
    s3.client().put_object(Bucket=bucket, Key="in/clip?v=1#x.mp4", Body=data)
    dest = tmp_path / "dl" / "input.mp4"
    dest.parent.mkdir()
    download_s3(f"s3://{bucket}/in/clip?v=1#x.mp4", str(dest), _s3_settings(s3, bucket))
    assert dest.read_bytes() == data
    assert os.listdir(dest.parent) == ["input.mp4"]


@pytest.mark.parametrize("what", ["key", "bucket"])
def test_download_s3_missing(s3, tmp_path, what):
    bucket = s3.create_bucket() if what == "key" else "no-such-bucket-here"
    url = f"s3://{bucket}/in/missing.mp4"
    with pytest.raises(RenderError) as ei:
        download_s3(url, str(tmp_path / "input.mp4"), _s3_settings(s3, bucket))
    assert ei.value.code == "fetch_failed" and url in ei.value.message
    assert os.listdir(tmp_path) == []


def test_download_s3_too_large_fetches_nothing(s3, proxy, tmp_path):
    bucket = s3.create_bucket()
    s3.client().put_object(Bucket=bucket, Key="big.mp4", Body=b"x" * 5000)
    settings = _s3_settings(s3, bucket, endpoint=proxy.endpoint_url, max_input_bytes=4999)
    with pytest.raises(RenderError) as ei:
        download_s3(f"s3://{bucket}/big.mp4", str(tmp_path / "input.mp4"), settings)
    assert ei.value.code == "input_too_large" and "5000" in ei.value.message
    assert proxy.count("HEAD") == 1 and proxy.count("GET") == 0
    assert os.listdir(tmp_path) == []
    # at the limit it is fine
    download_s3(f"s3://{bucket}/big.mp4", str(tmp_path / "input.mp4"), _s3_settings(s3, bucket, max_input_bytes=5000))
    assert (tmp_path / "input.mp4").stat().st_size == 5000


def test_download_s3_cut_off_leaves_no_file(s3, proxy, tmp_path):
    bucket = s3.create_bucket()
    s3.client().put_object(Bucket=bucket, Key="clip.mp4", Body=os.urandom(300_000))
    proxy.fault = lambda method, path: "truncate" if method == "GET" else None
    url = f"s3://{bucket}/clip.mp4"
    with pytest.raises(RenderError) as ei:
        download_s3(url, str(tmp_path / "input.mp4"), _s3_settings(s3, bucket, endpoint=proxy.endpoint_url))
    assert ei.value.code == "fetch_failed" and url in ei.value.message
    assert proxy.count("GET") >= 1  # the download had started
    assert os.listdir(tmp_path) == []


def test_download_s3_refuses_an_object_replaced_during_the_download(s3, proxy, tmp_path):
    bucket = s3.create_bucket()
    size = 9 * MiB  # two ranged GETs: a swap in between would give a file mixed from two objects
    s3.client().put_object(Bucket=bucket, Key="clip.mp4", Body=b"a" * size)
    swapped = []

    def swap_before_first_get(method: str, path: str):
        if method == "GET" and not swapped:
            swapped.append(True)
            s3.client().put_object(Bucket=bucket, Key="clip.mp4", Body=b"b" * size)  # same size: only the ETag tells
        return None

    proxy.fault = swap_before_first_get
    with pytest.raises(RenderError) as ei:
        download_s3(f"s3://{bucket}/clip.mp4", str(tmp_path / "input.mp4"), _s3_settings(s3, bucket, endpoint=proxy.endpoint_url))
    assert swapped and ei.value.code == "fetch_failed" and "ETag" in ei.value.message
    assert os.listdir(tmp_path) == []


def test_download_s3_refuses_an_object_grown_after_the_size_check(s3, proxy, tmp_path):
    bucket = s3.create_bucket()
    s3.client().put_object(Bucket=bucket, Key="clip.mp4", Body=b"a" * 1000)
    gets: list[str] = []

    def grow_before_get(method: str, path: str):  # after the HEAD that checked the size
        if method == "GET":
            gets.append(path)
            s3.client().put_object(Bucket=bucket, Key="clip.mp4", Body=b"b" * 3 * MiB)
        return None

    proxy.fault = grow_before_get
    settings = _s3_settings(s3, bucket, endpoint=proxy.endpoint_url, max_input_bytes=2000)
    written: list[int] = []
    real_replace = os.replace

    def spy(a, b):  # s3transfer moves its finished temp file into place with os.replace
        written.append(os.path.getsize(a))
        real_replace(a, b)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", spy)
        with pytest.raises(RenderError) as ei:
            download_s3(f"s3://{bucket}/clip.mp4", str(tmp_path / "input.mp4"), settings)
    assert gets and ei.value.code == "fetch_failed" and "ETag" in ei.value.message
    assert written == []  # nothing was written whole, let alone 3 MiB
    assert proxy.count("HEAD") == 1  # the size check's; the download trusted it rather than asking again
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("url", ["s3://bucket-only", "s3:///key", "https://example.com/x.mp4", "s3://b/"])
def test_download_s3_bad_urls(tmp_path, url):
    with pytest.raises(RenderError) as ei:
        download_s3(url, str(tmp_path / "input.mp4"), Settings())
    assert ei.value.code == "invalid_input"


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_work_area_keeps_a_jobs_segments_until_it_ends(kind, s3, tmp_path):
    """The work area a running job's finished segments wait in (workarea.py), in both stores: the
    segments a keeper wrote are read back by a keeper of a later run under the same plan, a new
    plan clears them, and the start-up sweep removes areas of jobs that are not going on."""
    import ray

    from ecg_ray.rendering.resume import KeptPlan, SegmentKeeper
    from ecg_ray.service.workarea import sweep_work_areas, work_area

    if kind == "s3":
        bucket = s3.create_bucket()
        store: LocalStore | S3Store = S3Store(_s3_settings(s3, bucket, s3_prefix="renders"))
    else:
        store = LocalStore(Settings(output_dir=str(tmp_path)))
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    plan = KeptPlan(segments=3, digest="d1")
    first = SegmentKeeper(work_area(store, "job-a"), "job-a")
    assert first.kept_plan() is None
    first.start(plan)
    first.keep(0, ray.put(b"segment zero"))
    first.keep(2, ray.put(b"segment two"))
    first.close()
    SegmentKeeper(work_area(store, "job-b"), "job-b").start(plan)

    again = SegmentKeeper(work_area(store, "job-a"), "job-a")
    assert again.kept_plan() == plan
    assert again.finished(plan) == {0: b"segment zero", 2: b"segment two"}
    again.start(KeptPlan(segments=2, digest="d2"))  # another plan: a fresh start
    assert again.finished(again.kept_plan()) == {}
    again.close()

    sweep_work_areas(store, keep={"job-a"})
    assert SegmentKeeper(work_area(store, "job-b"), "job-b").kept_plan() is None
    assert work_area(store, "job-a").names() == ["plan.json"]
    if kind == "s3":
        keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert keys == ["renders/.work/job-a/plan.json"]
    with pytest.raises(RenderError):
        work_area(store, "../escape")


def _stalled_put(s3, proxy, tmp_path, cancelled=lambda: False, **kw):
    """A result stored to an S3 that takes the upload and never answers (the proxy's "hang")."""
    import threading
    import time

    bucket = s3.create_bucket()
    proxy.fault = lambda method, path: "hang" if method == "PUT" else None
    store = S3Store(_s3_settings(s3, bucket, endpoint=proxy.endpoint_url, **kw))
    src = tmp_path / "result.mp4"
    _file(src, 1000)
    t0 = time.monotonic()
    with pytest.raises(RenderError) as ei:
        store.put(str(src), "stalled", cancelled=cancelled)
    took = time.monotonic() - t0
    assert src.exists()  # the caller still has its file (it cleans up)
    deadline = time.monotonic() + 90  # the upload's own thread ends by itself (its read timeout)
    while [t for t in threading.enumerate() if t.name == "ecg-s3-upload"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [t for t in threading.enumerate() if t.name in ("ecg-s3-upload", "ecg-download-watch")]
    assert not _exists(s3, bucket, "renders/stalled.mp4")  # nothing landed after the failure
    return ei.value, took


def test_a_stalled_s3_upload_fails_by_its_deadline(s3, proxy, tmp_path):
    err, took = _stalled_put(s3, proxy, tmp_path, store_deadline_s=1.5, store_min_bytes_per_s=0)
    assert err.code == "storage_failed" and "ECG_STORE_DEADLINE_S" in err.message, err.message
    assert "s3://" in err.message and took < 5, (err.message, took)


def test_a_cancel_ends_an_s3_upload_within_two_seconds(s3, proxy, tmp_path):
    import time

    from ecg_ray.errors import Cancelled

    t_cancel = time.monotonic() + 1.0
    err, took = _stalled_put(s3, proxy, tmp_path, store_min_bytes_per_s=0,
                             cancelled=lambda: time.monotonic() > t_cancel)
    assert isinstance(err, Cancelled) and err.code == "cancelled", err
    assert took < 3.0, took


def test_a_cancel_ends_the_wait_between_upload_attempts(s3, tmp_path, monkeypatch, caplog):
    """A cancel while the upload waits to try again (S3 unreachable, a 30 s backoff here): the
    upload's thread stops waiting at once and makes no further attempt."""
    import threading
    import time

    from ecg_ray.errors import Cancelled

    monkeypatch.setattr(storage, "_BACKOFF_S", (30.0, 30.0))
    store, _ = _unreachable_store(s3)
    src = tmp_path / "result.mp4"
    _file(src, 1000)
    caplog.set_level("WARNING", logger="ecg_ray.service.storage")
    waiting = lambda: any("retrying in 30 s" in r.getMessage() for r in caplog.records)  # noqa: E731
    with pytest.raises(Cancelled):
        store.put(str(src), "waits", cancelled=waiting)
    deadline = time.monotonic() + 10  # far less than the 30 s wait it was in
    while [t for t in threading.enumerate() if t.name == "ecg-s3-upload"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [t for t in threading.enumerate() if t.name == "ecg-s3-upload"]
    assert sum("retrying in" in r.getMessage() for r in caplog.records) == 1  # no second attempt's failure
    assert src.exists()
