"""Callbacks against a real HTTP receiver on 127.0.0.1: signing, throttling, ordering, retries, policy."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from ecg_ray.config import Settings, load_settings
from ecg_ray.service.callbacks import CallbackSender, sign, verify
from tests.receiver import Received, Receiver

SECRET = "test-secret"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = dict(
        callback_secret=SECRET, callback_interval_s=0.05, callback_timeout_s=5.0, callback_retry_s=10.0,
        backend_callback_url="", allow_networks="", deny_networks="",
    )
    values.update(overrides)
    return load_settings().model_copy(update=values)


class Failures:
    """on_failure hook that records (job_id, reason)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []

    def __call__(self, job_id: str, reason: str) -> None:
        with self.lock:
            self.calls.append((job_id, reason))

    def reasons(self, job_id: str) -> list[str]:
        with self.lock:
            return [r for j, r in self.calls if j == job_id]


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def failures() -> Failures:
    return Failures()


@pytest.fixture
def make_sender(failures: Failures) -> Iterator[Callable[..., CallbackSender]]:
    made: list[CallbackSender] = []

    def make(**overrides: object) -> CallbackSender:
        s = CallbackSender(make_settings(**overrides), on_failure=failures)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close(timeout=0.5)


@pytest.fixture
def cb_logs() -> Iterator[list[logging.LogRecord]]:
    """Records of ecg_ray.service.callbacks (a handler of our own: the package logger may not propagate)."""
    records: list[logging.LogRecord] = []

    class _H(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("ecg_ray.service.callbacks")
    handler, old_level = _H(level=logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def kinds(events: list[Received]) -> list[str]:
    return [e.json["status"] for e in events]


def progress_of(events: list[Received]) -> list[Received]:
    return [e for e in events if e.json["status"] == "processing"]


def callback_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ecg-callback-")]


# --- signing -----------------------------------------------------------------------------------


def test_sign_and_verify() -> None:
    body = '{"job_id":"j","message":"렌더링"}'.encode()
    now = 1_700_000_000
    header = sign(SECRET, body, now)
    assert re.fullmatch(r"t=1700000000,v1=[0-9a-f]{64}", header)
    assert verify(SECRET, header, body, now=now + 10)
    assert not verify("wrong-secret", header, body, now=now)
    assert not verify(SECRET, header, body + b" ", now=now)           # tampered body
    assert not verify(SECRET, header, body, now=now + 301)            # stale t
    assert not verify(SECRET, header, body, now=now - 301)            # t from the future
    assert verify(SECRET, header, body, tolerance_s=1000, now=now + 600)
    forged = header.replace("t=1700000000", "t=1700000100")          # t is covered by the MAC
    assert not verify(SECRET, forged, body, now=now + 100)
    assert not verify(SECRET, "", body, now=now)
    assert not verify(SECRET, "garbage", body, now=now)
    assert not verify(SECRET, "t=abc,v1=00", body, now=now)
    assert not verify("", header, body, now=now)
    # a receiver rotating secrets may see two v1 values; either matching is enough
    other = sign("old-secret", body, now).split(",")[1]
    assert verify(SECRET, f"{header},{other}", body, now=now)
    assert verify("old-secret", f"{header},{other}", body, now=now)


def test_signed_delivery_headers_and_korean_round_trip(rx: Receiver, make_sender) -> None:
    sender = make_sender()
    msg = "자막 렌더링 중: 프레임 450/1000 🎬"
    sender.progress("job-ko", rx.url_for("/cb"), 450, 1000, message=msg)
    assert rx.wait_for(lambda r: len(r) == 1, timeout=3)  # else the final may supersede it
    sender.final("job-ko", rx.url_for("/cb"), "completed", message="완료되었습니다", download_url="http://x/y.mp4",
                 file_size=123, duration=4.5, result={"제목": "테스트"})
    assert sender.flush("job-ko", 5)
    events = rx.events("job-ko")
    assert kinds(events) == ["processing", "completed"]
    for e in events:
        assert e.method == "POST" and e.path == "/cb"
        assert e.header("content-type") == "application/json"
        assert (e.header("user-agent") or "").startswith("ecg-ray/")
        assert e.header("x-ecg-event") == e.json["status"].replace("processing", "progress")
        assert re.fullmatch(r"[0-9a-f-]{36}", e.header("x-ecg-delivery") or "")
        assert verify(SECRET, e.header("x-ecg-signature") or "", e.body)
        assert not verify("wrong", e.header("x-ecg-signature") or "", e.body)
        assert e.body == json.dumps(e.json, ensure_ascii=False, separators=(",", ":")).encode()  # raw UTF-8, compact
    p, c = (e.json for e in events)
    assert p == {"job_id": "job-ko", "status": "processing", "progress": 45, "message": msg,
                 "frames_done": 450, "frames_total": 1000, "timestamp": p["timestamp"]}
    assert ISO_Z.match(p["timestamp"])
    assert msg.encode() in events[0].body
    assert c["message"] == "완료되었습니다" and c["result"] == {"제목": "테스트"}
    assert (c["progress"], c["download_url"], c["file_size"], c["duration"]) == (100, "http://x/y.mp4", 123, 4.5)
    assert ISO_Z.match(c["timestamp"])
    assert events[0].header("x-ecg-delivery") != events[1].header("x-ecg-delivery")


def test_no_signature_header_without_secret(rx: Receiver, make_sender) -> None:
    sender = make_sender(callback_secret="")
    sender.final("job-nosig", rx.url_for("/cb"), "cancelled")
    assert sender.flush("job-nosig", 5)
    (e,) = rx.events("job-nosig")
    assert e.header("x-ecg-signature") is None
    assert e.header("x-ecg-delivery")


def test_failed_and_cancelled_payloads_carry_last_progress(rx: Receiver, make_sender) -> None:
    sender = make_sender()
    sender.progress("job-f", rx.url_for(), 40, 100)
    sender.final("job-f", rx.url_for(), "failed", error_code="encoder_failed", error_message="FFmpeg exited 1")
    sender.progress("job-c", rx.url_for(), 7, 10)
    sender.final("job-c", rx.url_for(), "cancelled")
    assert sender.flush("job-f", 5) and sender.flush("job-c", 5)
    f = rx.events("job-f")[-1].json
    assert {k: f[k] for k in ("status", "progress", "error_code", "error_message", "message")} == {
        "status": "failed", "progress": 40, "error_code": "encoder_failed",
        "error_message": "FFmpeg exited 1", "message": "FFmpeg exited 1"}
    c = rx.events("job-c")[-1].json
    assert (c["status"], c["progress"]) == ("cancelled", 70) and c["message"] and ISO_Z.match(c["timestamp"])
    assert rx.events("job-c")[-1].header("x-ecg-event") == "cancelled"


# --- progress ----------------------------------------------------------------------------------


def test_progress_throttled_coalesced_and_never_resent(rx: Receiver, make_sender) -> None:
    sender = make_sender(callback_interval_s=1.0)
    in_calls = 0.0
    for i in range(1, 51):  # 50 updates in ~0.8 s
        t0 = time.monotonic()
        sender.progress("job-t", rx.url_for(), i, 100)
        in_calls += time.monotonic() - t0
        time.sleep(0.016)
    assert in_calls < 0.1, "the caller was slowed down"
    # the newest update arrives once the interval allows
    assert rx.wait_for(lambda r: any(e.json["frames_done"] == 50 for e in r), timeout=3)
    time.sleep(1.2)  # nothing further is pending: nothing more may arrive
    events = progress_of(rx.events("job-t"))
    assert 1 <= len(events) <= 2, [e.json["frames_done"] for e in events]
    assert events[-1].json["frames_done"] == 50
    percents = [e.json["progress"] for e in events]
    assert percents == sorted(set(percents))
    for a, b in zip(events, events[1:]):
        assert b.at - a.at >= 0.9


def test_progress_never_goes_backwards(rx: Receiver, make_sender) -> None:
    sender = make_sender(callback_interval_s=0.05)
    sender.progress("job-m", rx.url_for(), 50, 100)
    assert rx.wait_for(lambda r: len(r) == 1, timeout=3)
    sender.progress("job-m", rx.url_for(), 30, 100)  # a lower percent: dropped
    time.sleep(0.3)
    sender.progress("job-m", rx.url_for(), 60, 100)
    assert rx.wait_for(lambda r: len(r) == 2, timeout=3)
    time.sleep(0.2)
    assert [e.json["progress"] for e in rx.events("job-m")] == [50, 60]


def test_failed_progress_tried_twice_then_dropped(rx: Receiver, make_sender, failures) -> None:
    sender = make_sender(callback_interval_s=0.05)
    rx.fail_next(5, status=500)
    sender.progress("job-pf", rx.url_for(), 3, 10)
    assert rx.wait_for(lambda r: len(r) == 2, timeout=3)
    assert not rx.wait_for(lambda r: len(r) > 2, timeout=1.0)  # a lost progress is not chased
    events = rx.events("job-pf")
    assert len({e.header("x-ecg-delivery") for e in events}) == 1
    assert failures.reasons("job-pf") == ["http_500"] * 2
    rx.fail_next(0)
    sender.progress("job-pf", rx.url_for(), 4, 10)  # the next one goes through
    assert rx.wait_for(lambda r: len(r) == 3 and r[-1].status == 200, timeout=3)


# --- the final callback ------------------------------------------------------------------------


def test_final_exactly_once_and_after_all_progress(rx: Receiver, make_sender, cb_logs) -> None:
    sender = make_sender(callback_interval_s=0.05)
    url = rx.url_for()
    sender.progress("job-x", url, 10, 100)
    assert rx.wait_for(lambda r: len(r) == 1, timeout=3)
    sender.progress("job-x", url, 20, 100)
    sender.progress("job-x", url, 30, 100)
    sender.final("job-x", url, "completed", download_url="http://d/x.mp4")
    sender.final("job-x", url, "failed", error_code="internal_error", error_message="late")  # ignored
    sender.progress("job-x", url, 40, 100)  # after the final: dropped
    assert sender.flush("job-x", 5)
    sender.final("job-x", url, "completed")  # after delivery too: ignored
    sender.progress("job-x", url, 90, 100)
    time.sleep(0.5)
    statuses = kinds(rx.events("job-x"))
    assert statuses.count("completed") == 1 and "failed" not in statuses
    assert statuses[-1] == "completed" and set(statuses[:-1]) == {"processing"}
    assert all(e.json["progress"] < 40 for e in progress_of(rx.events("job-x")))
    assert sum("duplicate final" in r.getMessage() for r in cb_logs) == 2
    # the job's state and worker are gone once its final is done
    assert "job-x" not in sender._jobs
    assert not any(t.name == "ecg-callback-job-x" and t.is_alive() for t in threading.enumerate())


def test_final_retried_with_fresh_signatures_and_same_delivery_id(rx: Receiver, make_sender, failures) -> None:
    sender = make_sender()
    rx.fail_next(3, status=500)
    t0 = time.monotonic()
    sender.final("job-r", rx.url_for(), "completed")
    assert time.monotonic() - t0 < 0.1
    assert sender.flush("job-r", 10)
    events = rx.events("job-r")
    assert [e.status for e in events] == [500, 500, 500, 200]
    assert len({e.header("x-ecg-delivery") for e in events}) == 1
    assert len({e.body for e in events}) == 1
    # exponential backoff: 0.5 s, 1 s, 2 s
    gaps = [b.at - a.at for a, b in zip(events, events[1:])]
    assert 0.45 <= gaps[0] < 0.9 and 0.95 <= gaps[1] < 1.6 and 1.95 <= gaps[2] < 2.8, gaps
    # each attempt is signed when sent: its t is close to its own arrival, not the first attempt's
    for e in events:
        assert verify(SECRET, e.header("x-ecg-signature") or "", e.body, tolerance_s=2, now=e.wall)
    assert failures.reasons("job-r") == ["http_500"] * 3


def test_receiver_down_then_back_final_delivered(rx: Receiver, make_sender, failures) -> None:
    sender = make_sender(callback_retry_s=15.0)
    rx.set_down(True, hard=True)  # the listening socket is closed: connections are refused
    sender.final("job-down", rx.url_for(), "completed")
    time.sleep(3.0)
    assert not sender.flush("job-down", 0)
    assert len(failures.reasons("job-down")) >= 3
    rx.set_down(False)  # same port again
    assert sender.flush("job-down", 10)
    assert [e.status for e in rx.events("job-down")] == [200]


def test_soft_down_503_is_retried(rx: Receiver, make_sender, failures) -> None:
    sender = make_sender()
    rx.set_down(True)
    sender.final("job-503", rx.url_for(), "completed")
    assert rx.wait_for(lambda r: len(r) >= 2, timeout=3)
    rx.set_down(False)
    assert sender.flush("job-503", 5)
    assert [e.status for e in rx.events("job-503")][-1] == 200
    assert set(failures.reasons("job-503")) == {"http_503"}


@pytest.mark.parametrize("status", [400, 404, 410])
def test_final_4xx_not_retried(rx: Receiver, make_sender, failures, status: int) -> None:
    sender = make_sender()
    rx.fail_next(5, status=status)
    sender.final("job-4xx", rx.url_for(), "completed")
    t0 = time.monotonic()
    assert not sender.flush("job-4xx", 5)
    assert time.monotonic() - t0 < 1.0  # given up at once, not after the retry budget
    assert not rx.wait_for(lambda r: len(r) >= 2, timeout=1.0)
    assert failures.reasons("job-4xx") == [f"http_{status}"]


@pytest.mark.parametrize("status", [408, 429])
def test_final_408_429_retried(rx: Receiver, make_sender, status: int) -> None:
    sender = make_sender()
    rx.fail_next(1, status=status)
    sender.final("job-slow-down", rx.url_for(), "completed")
    assert sender.flush("job-slow-down", 5)
    assert [e.status for e in rx.events("job-slow-down")] == [status, 200]


def test_redirect_is_not_followed_and_counts_as_failure(rx: Receiver, make_sender, failures) -> None:
    sender = make_sender()
    rx.fail_next(1, status=302, headers={"Location": rx.url_for("/elsewhere")})
    sender.final("job-302", rx.url_for("/cb"), "completed")
    assert sender.flush("job-302", 5)
    assert [(e.path, e.status) for e in rx.requests] == [("/cb", 302), ("/cb", 200)]
    assert failures.reasons("job-302") == ["http_302"]


# --- URLs and policy ---------------------------------------------------------------------------


def test_refused_url_never_raises_and_is_not_retried(make_sender, failures, cb_logs) -> None:
    sender = make_sender()
    url = "http://169.254.169.254/latest/meta-data"
    t0 = time.monotonic()
    sender.progress("job-meta", url, 1, 10)
    sender.final("job-meta", url, "completed")
    assert time.monotonic() - t0 < 0.1
    assert not sender.flush("job-meta", 3)
    assert time.monotonic() - t0 < 1.0
    assert failures.reasons("job-meta") == ["forbidden_url"]
    assert sum("refused by the network policy" in r.getMessage() for r in cb_logs) == 1


def test_denied_network_never_connects(rx: Receiver, make_sender, failures) -> None:
    sender = make_sender(deny_networks="127.0.0.0/8")
    sender.progress("job-deny", rx.url_for(), 5, 10)
    sender.final("job-deny", rx.url_for(), "failed", error_code="internal_error", error_message="x")
    assert not sender.flush("job-deny", 3)
    time.sleep(0.5)
    assert rx.requests == []
    assert failures.reasons("job-deny") == ["forbidden_url"]


def test_default_backend_callback_url(rx: Receiver, make_sender) -> None:
    sender = make_sender(backend_callback_url=rx.url_for("/default"))
    sender.progress("job-def", None, 1, 2)
    assert rx.wait_for(lambda r: len(r) == 1, timeout=3)
    sender.final("job-def", "", "completed")
    assert sender.flush("job-def", 5)
    assert [(e.path, e.json["status"]) for e in rx.events("job-def")] == [
        ("/default", "processing"), ("/default", "completed")]


def test_no_url_anywhere_sends_nothing(make_sender) -> None:
    sender = make_sender(backend_callback_url="")
    sender.progress("job-none", None, 1, 2)
    sender.final("job-none", None, "completed")
    t0 = time.monotonic()
    assert not sender.flush("job-none", 5)
    assert time.monotonic() - t0 < 0.2  # nothing to wait for
    assert not any(t.name == "ecg-callback-job-none" for t in threading.enumerate())


# --- concurrency and lifecycle -----------------------------------------------------------------


def test_slow_receiver_does_not_delay_other_jobs() -> None:
    with Receiver() as slow, Receiver() as fast:
        slow.delay(2.0)
        sender = CallbackSender(make_settings(callback_interval_s=0.05))
        try:
            sender.final("job-a", slow.url_for(), "completed")
            assert slow.wait_for(lambda r: len(r) == 1, timeout=3)  # arrived; its answer takes 2 s
            t0 = time.monotonic()
            for i in range(100):
                sender.progress("job-b", fast.url_for(), i, 100)
            sender.final("job-b", fast.url_for(), "completed")
            assert time.monotonic() - t0 < 0.2, "the caller was blocked by a slow receiver"
            assert sender.flush("job-b", 1.0)
            assert time.monotonic() - t0 < 1.0
            assert kinds(fast.events("job-b"))[-1] == "completed"
            assert not sender.flush("job-a", 0)  # still waiting for the slow receiver's answer
            assert sender.flush("job-a", 5)
        finally:
            sender.close(1)


def test_slow_receiver_keeps_one_jobs_order(rx: Receiver, make_sender) -> None:
    sender = make_sender()
    rx.delay(1.0)
    sender.progress("job-o", rx.url_for(), 1, 10)
    assert rx.wait_for(lambda r: len(r) == 1, timeout=3)  # in flight for 1 s
    t0 = time.monotonic()
    sender.final("job-o", rx.url_for(), "completed")
    assert time.monotonic() - t0 < 0.1
    assert sender.flush("job-o", 5)
    events = rx.events("job-o")
    assert kinds(events) == ["processing", "completed"]
    assert events[1].at - events[0].at >= 0.9  # the final waited for the progress's answer


def test_flush_true_false(rx: Receiver, make_sender) -> None:
    sender = make_sender(callback_retry_s=1.0)
    assert not sender.flush("job-unknown", 0.1)
    rx.delay(1.0)
    sender.final("job-late", rx.url_for(), "completed")
    assert not sender.flush("job-late", 0.2)  # not yet delivered
    assert sender.flush("job-late", 5)
    assert sender.flush("job-late", 0)  # the outcome is remembered
    rx.delay(0)
    rx.set_down(True)
    sender.final("job-never", rx.url_for(), "completed")
    t0 = time.monotonic()
    assert not sender.flush("job-never", 5)  # given up after callback_retry_s
    assert time.monotonic() - t0 < 2.5


def test_close_gives_up_and_leaves_no_threads(rx: Receiver, failures) -> None:
    non_daemon_before = {t for t in threading.enumerate() if not t.daemon}
    earlier = set(callback_threads())  # other tests' senders are not this test's business
    sender = CallbackSender(make_settings(callback_retry_s=60.0, callback_interval_s=5.0), on_failure=failures)
    sender.progress("job-idle", rx.url_for(), 1, 10)
    assert rx.wait_for(lambda r: len(r) == 1, timeout=3)
    sender.progress("job-idle", rx.url_for(), 2, 10)  # pending behind the interval
    rx.set_down(True, hard=True)
    sender.final("job-stuck", rx.url_for(), "completed")  # retried with backoff, never delivered
    time.sleep(0.2)
    threads = [t for t in callback_threads() if t not in earlier]
    assert len(threads) == 2 and all(t.daemon for t in threads)
    t0 = time.monotonic()
    sender.close(timeout=0.5)
    assert time.monotonic() - t0 < 1.5
    assert [t for t in threads if t.is_alive()] == []
    assert {t for t in threading.enumerate() if not t.daemon} <= non_daemon_before
    assert not sender.flush("job-stuck", 0.5)
    assert len(rx.events("job-idle")) == 1  # the pending progress was dropped, not sent at close
    # after close: calls are ignored, nothing raises, no thread starts
    sender.progress("job-after", rx.url_for(), 1, 2)
    sender.final("job-after", rx.url_for(), "completed")
    assert [t for t in callback_threads() if t not in earlier] == []


def test_a_receiver_dripping_its_answer_does_not_hold_the_delivery() -> None:
    """A receiver that answers 200 and then drips its body a byte every 0.5 s (each byte well
    within the read timeout) is done with after one read: the callback counts as delivered."""
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    stop = threading.Event()

    def serve() -> None:
        conn, _ = srv.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        while not stop.wait(0.5):
            try:
                conn.sendall(b"x")
            except OSError:
                break
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    sender = CallbackSender(make_settings())
    try:
        sender.final("drip-1", f"http://127.0.0.1:{srv.getsockname()[1]}/cb", "completed")
        assert sender.flush("drip-1", 5.0)
    finally:
        stop.set()
        sender.close(1)
        srv.close()
