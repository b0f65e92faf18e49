"""A download cannot hold a job forever: a server that drips a byte at a time fails the floor on
throughput, a slow one the overall deadline, and a cancel ends the download at once. Real
servers on loopback; the partial file is removed every time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecg_ray.config import Settings
from ecg_ray.errors import Cancelled, RenderError
from ecg_ray.sources.inputs import materialize

from .dripserver import dripping_server


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with dripping_server() as url:
        yield url


def _settings(**kw: object) -> Settings:
    base: dict[str, object] = {"fetch_timeout_s": 1.0, "fetch_min_bytes_per_s": 1, "fetch_deadline_s": 3600.0}
    return Settings(**{**base, **kw})


def _fails(url: str, tmp_path: Path, settings: Settings, cancelled=lambda: False) -> tuple[BaseException, float]:
    t0 = time.monotonic()
    with pytest.raises(RenderError) as ei:
        materialize(url, str(tmp_path), settings, cancelled=cancelled)
    took = time.monotonic() - t0
    assert list(tmp_path.iterdir()) == []  # the partial download is gone
    assert not [t for t in threading.enumerate() if t.name == "ecg-download-watch"]
    return ei.value, took


def test_a_server_dripping_bytes_fails_the_throughput_floor(server, tmp_path):
    # a byte every 0.1 s is 10 bytes/s: under a floor of 1000 bytes/s over each 1 s window
    err, took = _fails(f"{server}/drip/1/0.1", tmp_path, _settings(fetch_min_bytes_per_s=1000))
    assert err.code == "fetch_failed" and "ECG_FETCH_MIN_BYTES_PER_S" in err.message, err.message
    assert took < 5, took  # one window and a look, not the 60 s the server would go on for


def test_a_download_past_its_deadline_fails(server, tmp_path):
    # 20 KB/s passes the floor, but not the 1.5 s deadline
    err, took = _fails(f"{server}/drip/2048/0.1", tmp_path, _settings(fetch_deadline_s=1.5))
    assert err.code == "fetch_failed" and "ECG_FETCH_DEADLINE_S" in err.message, err.message
    assert took < 5, took


def test_a_cancel_ends_the_download_within_a_second(server, tmp_path):
    t_cancel = time.monotonic() + 1.0
    err, took = _fails(f"{server}/drip/1/0.2", tmp_path, _settings(fetch_min_bytes_per_s=0),
                       cancelled=lambda: time.monotonic() > t_cancel)
    assert isinstance(err, Cancelled) and err.code == "cancelled", err
    assert took < 2.0, took


def test_a_download_that_keeps_up_is_not_stopped(server, tmp_path):
    """The watch ends only what must end: a download going at its pace (about 1.3 MB/s, over a
    floor of 1000 bytes/s) runs through several windows and ends by the size limit, not as slow."""
    err, took = _fails(f"{server}/drip/65536/0.05/nolength", tmp_path,
                       _settings(fetch_min_bytes_per_s=1000, max_input_bytes=4_000_000))
    assert err.code == "input_too_large", err.message
    assert took > 2.0, took  # it did run past two of the 1 s windows


# -- the same limits for s3:// inputs (a real S3-compatible server behind a proxy that stalls) --

@pytest.fixture
def stalled_s3(s3_server, monkeypatch, tmp_path) -> Iterator[tuple[str, str]]:
    """An s3:// URL whose GET drips a byte every 0.2 s (the proxy's "drip" fault); its endpoint."""
    from .s3util import FaultProxy, aws_env

    aws_env(monkeypatch)
    bucket = s3_server.create_bucket()
    s3_server.client().put_object(Bucket=bucket, Key="in/v.mp4", Body=b"v" * 200_000)
    proxy = FaultProxy(s3_server.port)
    proxy.fault = lambda method, path: "drip" if method == "GET" and "v.mp4" in path else None
    yield f"s3://{bucket}/in/v.mp4", proxy.endpoint_url
    proxy.close()


def _s3_fails(url: str, endpoint: str, tmp_path: Path, cancelled=lambda: False, **kw: object):
    t0 = time.monotonic()
    with pytest.raises(RenderError) as ei:
        materialize(url, str(tmp_path), _settings(s3_endpoint_url=endpoint, **kw), cancelled=cancelled)
    took = time.monotonic() - t0
    # s3transfer's own read ends when the stalled connection does (the proxy gives up after
    # 5 s): then its thread and its file are gone too
    deadline = time.monotonic() + 20
    while [t for t in threading.enumerate() if t.name == "ecg-s3-download"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [t for t in threading.enumerate() if t.name in ("ecg-s3-download", "ecg-download-watch")]
    assert list(tmp_path.iterdir()) == []
    return ei.value, took


def test_a_stalled_s3_read_fails_the_throughput_floor(stalled_s3, tmp_path):
    err, took = _s3_fails(*stalled_s3, tmp_path, fetch_min_bytes_per_s=1000)
    assert err.code == "fetch_failed" and "ECG_FETCH_MIN_BYTES_PER_S" in err.message, err.message
    assert "s3://" in err.message
    assert took < 5, took


def test_an_s3_download_past_its_deadline_fails(stalled_s3, tmp_path):
    err, took = _s3_fails(*stalled_s3, tmp_path, fetch_min_bytes_per_s=0, fetch_deadline_s=1.5)
    assert err.code == "fetch_failed" and "ECG_FETCH_DEADLINE_S" in err.message, err.message
    assert took < 5, took


def test_a_cancel_ends_an_s3_download_within_two_seconds(stalled_s3, tmp_path):
    t_cancel = time.monotonic() + 1.0
    err, took = _s3_fails(*stalled_s3, tmp_path, fetch_min_bytes_per_s=0,
                          cancelled=lambda: time.monotonic() > t_cancel)
    assert isinstance(err, Cancelled) and err.code == "cancelled", err
    assert took < 3.0, took  # the cancel came after 1 s
