"""Faults around the render service, end to end: the real app under Ray Serve on loopback, real
callback receivers, and S3 (moto's server) reached through a FaultProxy that can drop or fail
requests. The callback receiver goes down hard for a minute, S3 goes away during an upload (and
comes back, or does not); a job running next to a faulted one is unaffected.

Afterwards no FFmpeg runs, no Chromium beyond the two warm actors' is left, and the service's
temp directory holds nothing but the live actors' empty work directories.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from .conftest import leftover_processes
from .frames import beep_onsets, caption_mask, frame_numbers
from .receiver import Receiver
from .s3util import FaultProxy, MotoS3
from .serveutil import running_service, serving_directory
from .test_render import CUES, expected_caption_frames
from .test_service import SECRET, Svc, _callbacks, _check_callbacks, wait_healthy

DOWN_S = 60.0  # how long the callback receiver is gone (the issue: "down for a minute")


@pytest.fixture(scope="module")
def media_url(media_dir, numbered):
    with serving_directory(media_dir) as url:
        yield url


@pytest.fixture(scope="module")
def fsvc(tmp_path_factory, media_url, numbered, s3_server: MotoS3):
    """The service with results in S3 through a FaultProxy, two jobs at once, and final callbacks
    retried for 150 s (more than the receiver's downtime plus the longest backoff step, 30 s)."""
    proxy = FaultProxy(s3_server.port)
    bucket = s3_server.create_bucket()
    rx = Receiver().start()
    with running_service(
        tmp_path_factory.mktemp("service_faults"), ECG_CALLBACK_SECRET=SECRET, MAX_CONCURRENT_JOBS="2",
        ECG_MAX_QUEUED_JOBS="10", ECG_CALLBACK_RETRY_S="150",
        S3_BUCKET=bucket, ECG_S3_ENDPOINT_URL=proxy.endpoint_url, ECG_S3_PREFIX="renders",
        AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE="/nonexistent/aws-config", AWS_SHARED_CREDENTIALS_FILE="/nonexistent/aws-credentials",
    ) as (url, env):
        s = Svc(url, env, Path(env["ECG_STATE_DIR"]).parent, media_url, rx)
        s.proxy, s.bucket, s.s3, s.numbered = proxy, bucket, s3_server, numbered
        assert wait_healthy(s)["storage"] == "s3"
        yield s
        s.http.close()
    rx.stop()
    proxy.close()


@pytest.fixture(autouse=True)
def healthy_s3(fsvc):
    fsvc.proxy.fault = lambda method, path: None
    fsvc.proxy.down = False
    yield
    fsvc.proxy.fault = lambda method, path: None
    fsvc.proxy.down = False


# -- helpers -----------------------------------------------------------------------------------------

def _final_of(job_id: str):
    return lambda reqs: any(r.job_id == job_id and r.json["status"] != "processing" for r in reqs)


def _key(job_id: str) -> str:
    return f"renders/{job_id}.mp4"


def _no_object(svc: Svc, job_id: str) -> None:
    c = svc.s3.client()
    listing = c.list_objects_v2(Bucket=svc.bucket, Prefix=_key(job_id))
    assert listing.get("KeyCount", 0) == 0, listing.get("Contents")
    uploads = c.list_multipart_uploads(Bucket=svc.bucket, Prefix=_key(job_id))
    assert not uploads.get("Uploads"), uploads["Uploads"]


def _check_video(svc: Svc, st: dict, tmp_path: Path) -> None:
    """The stored object is the whole video: every frame once in order, captions where the cues are,
    the audio in sync."""
    res = st["result"]
    head = svc.s3.client().head_object(Bucket=svc.bucket, Key=_key(st["job_id"]))
    assert head["ContentLength"] == res["file_size"]
    got = tmp_path / f"{st['job_id']}.mp4"
    got.write_bytes(httpx.get(res["download_url"], timeout=60).content)
    assert got.stat().st_size == res["file_size"]
    assert frame_numbers(got) == list(range(100))
    assert {i for i, m in enumerate(caption_mask(got, svc.numbered)) if m} == expected_caption_frames()
    assert [round(t * 25) for t in beep_onsets(got)] == [10, 50, 90]


def _assert_clean(svc: Svc, timeout: float = 15.0) -> None:
    """No FFmpeg, no extra Chromium, and nothing in the temp dir but live actors' empty work dirs."""
    import psutil

    def leftovers() -> list[str]:
        tmp = svc.base / "tmp"
        left = []
        for name in os.listdir(tmp):
            path = tmp / name
            parts = name.split("-")
            live_actor_dir = (name.startswith("ecg-") and len(parts) > 2 and parts[2] == "actor"
                              and parts[1].isdigit() and psutil.pid_exists(int(parts[1])) and path.is_dir())
            if live_actor_dir:
                left += [str(path / f) for f in os.listdir(path)]
            else:
                left.append(str(path))
        return left

    deadline = time.monotonic() + timeout
    while True:
        procs, files = leftover_processes(allowed_browsers=2), leftovers()
        if (not procs and not files) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert procs == [], procs
    assert files == [], files


# -- callbacks -----------------------------------------------------------------------------------------

def test_callback_receiver_down_while_a_job_runs_and_finishes(fsvc, tmp_path):
    """The receiver's socket is closed for a minute while a job renders and completes: the render
    does not wait for it; a job next to it, with a receiver that is up, gets its final callback
    during the downtime; once the receiver is back the final callback arrives, exactly once."""
    rx = fsvc.rx
    other_rx = Receiver().start()
    try:
        video = f"{fsvc.media}/numbered.mp4"
        assert fsvc.submit(job_id="cb-down", video_url=video, scenario=CUES).status_code == 200
        fsvc.wait("cb-down", until=("processing", "completed", "failed"), timeout=60)
        rx.set_down(True, hard=True)
        down_at = time.monotonic()
        assert fsvc.submit(job_id="cb-other", video_url=video, scenario=CUES,
                           callback_url=other_rx.url_for("/other")).status_code == 200

        st = fsvc.wait("cb-down", timeout=120)[-1]
        assert st["state"] == "completed", st
        assert time.monotonic() - down_at < DOWN_S, "the render waited for the dead receiver"
        # The other job's callbacks are not queued behind the dead receiver's retries.
        assert fsvc.wait("cb-other", timeout=120)[-1]["state"] == "completed"
        assert other_rx.wait_for(_final_of("cb-other"), timeout=max(0.1, down_at + DOWN_S - time.monotonic()))
        assert time.monotonic() - down_at < DOWN_S, "the other job's final callback came only after the downtime"
        _check_callbacks(_callbacks(other_rx, "cb-other"), "completed")
        assert not rx.events("cb-down") or all(e.json["status"] == "processing" for e in rx.events("cb-down"))

        time.sleep(max(0.0, down_at + DOWN_S - time.monotonic()))
        rx.set_down(False)
        back_at = time.monotonic()
        # Backoff doubles from 0.5 s up to 30 s: the next attempt comes at most 30 s after it is back.
        assert rx.wait_for(_final_of("cb-down"), timeout=45), "the final callback never arrived"
        time.sleep(3)  # a duplicate would show up now
        events = rx.events("cb-down")
        final = _check_callbacks(events, "completed")  # exactly one final, after every progress callback
        assert events[-1].at >= back_at
        assert events[-1].header("X-ECG-Delivery")
        assert final["download_url"] == st["result"]["download_url"] and final["file_size"] == st["result"]["file_size"]
        _check_video(fsvc, st, tmp_path)
    finally:
        rx.set_down(False)
        other_rx.stop()
    _assert_clean(fsvc)


# -- S3 ------------------------------------------------------------------------------------------------

def test_s3_unreachable_during_the_upload_then_back(fsvc, tmp_path):
    """Every request of the upload is dropped for 2 s from its first one (S3 unreachable), then
    S3 is back: the job completes; no object is visible before the whole one."""
    job_id = "s3-flaky"
    window: dict[str, float] = {}
    seen_partial: list[int] = []

    def fault(method: str, path: str):
        if _key(job_id) not in path:
            return None
        start = window.setdefault("start", time.monotonic())
        return "drop" if time.monotonic() - start < 2.0 else None

    fsvc.proxy.fault = fault
    watching = threading.Event()

    def watch():  # straight to moto: is anything visible under the key before the job completes?
        c = fsvc.s3.client()
        while not watching.is_set():
            try:
                seen_partial.append(c.head_object(Bucket=fsvc.bucket, Key=_key(job_id))["ContentLength"])
                return
            except Exception:  # noqa: BLE001 - not there (yet)
                time.sleep(0.05)

    w = threading.Thread(target=watch, daemon=True)
    w.start()
    try:
        assert fsvc.submit(job_id=job_id, video_url=f"{fsvc.media}/numbered.mp4", scenario=CUES).status_code == 200
        st = fsvc.wait(job_id, timeout=120)[-1]
    finally:
        watching.set()
        w.join(5)
    assert st["state"] == "completed", st
    assert "start" in window, "the upload never went through the proxy"
    dropped = [p for m, p in fsvc.proxy.requests if _key(job_id) in p]
    assert len(dropped) >= 2, dropped  # refused at first, then through
    # Whatever moto showed under the key was already the whole file.
    assert all(size == st["result"]["file_size"] for size in seen_partial), seen_partial
    _check_video(fsvc, st, tmp_path)
    assert _callbacks(fsvc.rx, job_id)[-1].json["status"] == "completed"
    uploads = fsvc.s3.client().list_multipart_uploads(Bucket=fsvc.bucket, Prefix=_key(job_id))
    assert not uploads.get("Uploads")
    _assert_clean(fsvc)


def test_s3_down_for_good_fails_the_job_cleanly_and_the_other_job_completes(fsvc, tmp_path):
    """Two jobs at once; S3 answers 500 to every request for one of them: that one fails with
    storage_failed (no object, no open multipart upload, its temp files gone, a failed callback);
    the other is stored and correct."""
    dead, ok = "s3-dead", "s3-ok"
    fsvc.proxy.fault = lambda method, path: "500" if _key(dead) in path else None
    video = f"{fsvc.media}/numbered.mp4"
    assert fsvc.submit(job_id=dead, video_url=video, scenario=CUES).status_code == 200
    assert fsvc.submit(job_id=ok, video_url=video, scenario=CUES).status_code == 200
    deadline = time.monotonic() + 10
    while (q := fsvc.http.get("/api/render/queue/status").json())["queued"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert q["queued"] == [], q  # both taken at once (MAX_CONCURRENT_JOBS=2)

    st_dead = fsvc.wait(dead, timeout=180)[-1]
    st_ok = fsvc.wait(ok, timeout=180)[-1]
    assert st_dead["state"] == "failed", st_dead
    assert st_dead["error"]["code"] == "storage_failed", st_dead["error"]
    assert f"s3://{fsvc.bucket}/{_key(dead)}" in st_dead["error"]["message"]
    assert fsvc.proxy.count("PUT", _key(dead)) >= 3  # it was retried before giving up
    _no_object(fsvc, dead)
    final = _check_callbacks(_callbacks(fsvc.rx, dead), "failed")
    assert final["error_code"] == "storage_failed"

    assert st_ok["state"] == "completed", st_ok
    _check_video(fsvc, st_ok, tmp_path)
    _check_callbacks(_callbacks(fsvc.rx, ok), "completed")
    _assert_clean(fsvc)
