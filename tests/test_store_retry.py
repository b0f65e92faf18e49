"""The job service's tries while the job table cannot be reached (jobs._until_stored): tried
again after a pause, each failure logged, and a close of the service ends the wait at once."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from ecg_ray.service import jobs
from ecg_ray.service.jobtable import StoreUnavailable


def test_tried_again_until_the_table_answers(caplog):
    calls: list[float] = []

    def write() -> int:
        calls.append(time.monotonic())
        if len(calls) < 2:
            raise StoreUnavailable("Redis at redis:6379 refused the connection")
        return 7

    caplog.set_level(logging.WARNING, logger="ecg_ray.service.jobs")
    assert jobs._until_stored(write, threading.Event(), "lease not released yet", {"job_id": "j"}) == 7
    assert len(calls) == 2 and calls[1] - calls[0] >= jobs._STORE_RETRY_S * 0.9
    [rec] = [r for r in caplog.records if r.getMessage() == "lease not released yet"]
    assert rec.levelno == logging.WARNING and rec.job_id == "j" and "refused" in rec.error


def test_a_close_ends_the_wait_and_the_tries(caplog):
    closed = threading.Event()
    calls: list[float] = []

    def write() -> None:
        calls.append(time.monotonic())
        raise StoreUnavailable("Redis away")

    threading.Timer(0.3, closed.set).start()
    t0 = time.monotonic()
    assert jobs._until_stored(write, closed, "job's end not written yet", {}) is None
    # the close came 0.3 s into the first 2 s wait: one more try, then no further wait
    assert len(calls) == 2 and time.monotonic() - t0 < jobs._STORE_RETRY_S, calls


def test_another_error_is_not_retried():
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        jobs._until_stored(broken, threading.Event(), "x", {})
    assert calls == [1]
